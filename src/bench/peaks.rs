//! Known peak throughputs by adapter name, so that `bench` can say what fraction of the hardware a
//! kernel reaches. Dense FP32 without tensor cores (boost clock) and memory bandwidth, from the
//! vendors' datasheets. An adapter not in the table (every CPU adapter among them: lavapipe's peak
//! is the host CPU's) gets no fraction rather than a guess.

/// One adapter's peaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// Dense FP32 TFLOP/s (non-tensor).
    pub fp32_tflops: f64,
    /// Memory bandwidth in GB/s.
    pub bandwidth_gbps: f64,
}

/// `(substring of the adapter name, peak)`, most specific first: the first match wins.
const TABLE: &[(&str, Peak)] = &[
    ("H100 PCIe", Peak { fp32_tflops: 51.2, bandwidth_gbps: 2000.0 }),
    ("H100 NVL", Peak { fp32_tflops: 60.0, bandwidth_gbps: 3900.0 }),
    ("H100", Peak { fp32_tflops: 67.0, bandwidth_gbps: 3350.0 }), // SXM5 80 GB
    ("H200", Peak { fp32_tflops: 67.0, bandwidth_gbps: 4800.0 }),
    ("A100 80GB PCIe", Peak { fp32_tflops: 19.5, bandwidth_gbps: 1935.0 }),
    ("A100-SXM4-80GB", Peak { fp32_tflops: 19.5, bandwidth_gbps: 2039.0 }),
    ("A100", Peak { fp32_tflops: 19.5, bandwidth_gbps: 1555.0 }), // 40 GB
    ("L40S", Peak { fp32_tflops: 91.6, bandwidth_gbps: 864.0 }),
    ("L4", Peak { fp32_tflops: 30.3, bandwidth_gbps: 300.0 }),
    ("RTX 4090", Peak { fp32_tflops: 82.6, bandwidth_gbps: 1008.0 }),
    ("RTX 3090", Peak { fp32_tflops: 35.6, bandwidth_gbps: 936.0 }),
    ("Tesla T4", Peak { fp32_tflops: 8.1, bandwidth_gbps: 320.0 }),
    ("Apple M1", Peak { fp32_tflops: 2.6, bandwidth_gbps: 68.0 }),
    ("Apple M2", Peak { fp32_tflops: 3.6, bandwidth_gbps: 100.0 }),
];

/// The peaks of the adapter called `name`, if the table knows it.
pub fn lookup(name: &str) -> Option<Peak> {
    TABLE.iter().find(|(key, _)| name.contains(key)).map(|&(_, peak)| peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_names_win_and_unknown_adapters_get_none() {
        assert_eq!(lookup("NVIDIA H100 80GB HBM3").map(|p| p.fp32_tflops), Some(67.0));
        assert_eq!(lookup("NVIDIA H100 PCIe").map(|p| p.bandwidth_gbps), Some(2000.0));
        assert_eq!(lookup("NVIDIA L40S").map(|p| p.fp32_tflops), Some(91.6));
        assert_eq!(lookup("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
    }
}
