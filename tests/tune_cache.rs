//! The autotuner's winners kept on disk: a second `Gpu` on the same adapter (as a second process
//! would open it) finds the first one's winner in the file and measures nothing.
//!
//! One test in its own binary, because it sets `SHADERLENS_TUNE_CACHE` for the process.

use shaderlens::ops::matmul;
use shaderlens::Gpu;

#[test]
fn a_second_gpu_reads_the_winner_from_the_file_and_does_not_measure() {
    let dir = std::env::temp_dir().join(format!("shaderlens-tune-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("autotune.json");
    std::env::set_var("SHADERLENS_TUNE_CACHE", &file);
    std::env::remove_var("SHADERLENS_AUTOTUNE");
    std::env::remove_var("SHADERLENS_MATMUL_VARIANT");
    let open = || Gpu::new().unwrap_or_else(|e| panic!("no GPU adapter for the GPU tests: {e}"));

    // Over 2^24 flops, so that it is measured; small enough for a CPU adapter.
    let (a, b) = ([200, 260], [260, 170]);
    let first = open();
    assert_eq!(first.tune().file(), Some(file.as_path()));
    let before = first.submit_count();
    let chosen = matmul::choose(&first, &a, &b).unwrap();
    assert!(first.submit_count() > before, "the first Gpu should have measured the candidates");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(chosen.name()) && text.contains("matmul:"), "{text}");
    drop(first);

    let second = open();
    let before = second.submit_count();
    assert_eq!(matmul::choose(&second, &a, &b).unwrap(), chosen);
    assert_eq!(second.submit_count(), before, "the second Gpu measured again instead of reading the file");
    assert!(second.tune().winners().iter().any(|(key, name)| key.op == "matmul" && name == chosen.name()));
    std::fs::remove_dir_all(&dir).unwrap();
}
