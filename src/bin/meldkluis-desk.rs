//! The counsellor's desktop program: a window over the offline reviewer's
//! library. No network code; see src/desk/.
#![forbid(unsafe_code)]
// On Windows, start as a window program, without a console window beside it.
#![windows_subsystem = "windows"]

fn main() -> std::process::ExitCode {
    meldkluis::desk::run_native()
}
