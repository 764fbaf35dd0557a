//! `shaderlens patch` (placeholder, filled below).
