//! `faultfs-mount BACKING MOUNT_POINT`: mounts a fault filesystem and keeps it mounted until
//! the process is killed or its standard input closes. Prints `mounted` once the mount is up.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backing, mount_point] = args.as_slice() else {
        eprintln!("usage: faultfs-mount BACKING MOUNT_POINT");
        return ExitCode::from(254);
    };
    let m = match splitbrain_faultfs::mount(backing, mount_point) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("faultfs-mount: {e}");
            return ExitCode::from(255);
        }
    };
    println!("mounted {}", m.mount_point().display());
    let _ = std::io::stdout().flush();
    // Wait for EOF on stdin (the parent closing it, or dying).
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    match m.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultfs-mount: {e}");
            ExitCode::from(255)
        }
    }
}
