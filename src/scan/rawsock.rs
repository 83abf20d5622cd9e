//! Raw sockets (stub).
pub(super) fn check_raw_access() -> Result<(), String> {
    Ok(())
}
