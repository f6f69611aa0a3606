use super::*;

#[test]
fn codes_are_stable_and_named() {
    for (value, status) in all_statuses().into_iter().enumerate() {
        assert_eq!(status as usize, value);
        let name = unsafe { CStr::from_ptr(ingest_status_name(value as c_int)) };
        assert_eq!(name, status.name());
    }
    let unknown = unsafe { CStr::from_ptr(ingest_status_name(-1)) };
    assert_eq!(unknown.to_str().unwrap(), "INGEST_UNKNOWN");
}

#[test]
fn last_error_is_per_thread_and_nul_safe() {
    set_last_error("bad\0input");
    let here = unsafe { CStr::from_ptr(ingest_last_error()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(here, "bad\\0input");
    let there = std::thread::spawn(|| unsafe { CStr::from_ptr(ingest_last_error()) }.to_bytes().len())
        .join()
        .unwrap();
    assert_eq!(there, 0);
    clear_last_error();
    assert!(unsafe { CStr::from_ptr(ingest_last_error()) }.is_empty());
}
