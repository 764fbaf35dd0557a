//! Issue 14 item 4: an npz member that no one asks for is never decompressed. A 4 MB weights file
//! holding an ignored 4 GiB all-zero `logits.npy` made `run` and `verify` reach 8 GB; here a
//! 256 MiB member (256 KiB deflated) sits beside the one array read, and the process's peak
//! memory must not grow by anything like its size. (One test in its own binary, so that no other
//! test's memory shows in the peak.)

#[path = "common/files.rs"]
mod files;

use std::io::Write;

use ndarray::{ArrayD, IxDyn};

/// The process's peak resident memory so far, in bytes (Linux's VmHWM).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux) is needed for this test");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// An npz with a small `x` and a `junk` member of `junk_floats` zeros, deflated as it is written
/// (never held whole in memory).
fn npz_with_junk(junk_floats: usize) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    zip.start_file("x.npy", options).unwrap();
    zip.write_all(&files::npy(&ArrayD::from_elem(IxDyn(&[3]), 2.0f32))).unwrap();
    zip.start_file("junk.npy", options).unwrap();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({junk_floats},), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    zip.write_all(b"\x93NUMPY\x01\x00").unwrap();
    zip.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    zip.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(junk_floats * 4) >> 20 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn an_ignored_member_is_never_decompressed() {
    let junk_floats = 64 << 20; // 256 MiB of float32 zeros
    let bytes = npz_with_junk(junk_floats);
    assert!(bytes.len() < 4 << 20, "the junk should deflate to little: {} bytes", bytes.len());
    let before = peak_rss();
    let fixture = shaderlens::fixture::Fixture::from_bytes("gelu", "junk", &bytes).unwrap();
    assert_eq!(fixture.names().collect::<Vec<_>>(), ["junk", "x"]);
    assert_eq!(fixture.input("x").unwrap().as_slice().unwrap(), &[2.0, 2.0, 2.0]);
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "reading x alone raised the peak memory by {} MiB", grown >> 20);
}
