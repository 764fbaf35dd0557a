//! Every kernel's Rust `Params` against the WGSL `struct Params` it mirrors, with naga's
//! layouter: the same size, and every WGSL field at the offset of the Rust field of its name.

use shaderlens::gpu::layout;

#[test]
fn every_params_struct_matches_its_wgsl() {
    let all = layout::all();
    assert!(all.len() >= 12, "only {} Params layouts are listed", all.len());
    for entry in all {
        let what = format!("{} against {}.wgsl", entry.rust, entry.shader.name);
        let module = naga::front::wgsl::parse_str(entry.shader.source).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap_or_else(|| panic!("{what}: no struct Params"));
        let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{what}: Params is not a struct") };
        assert_eq!(entry.size, *span as usize, "{what}: Rust size {} but WGSL size {span}", entry.size);
        assert_eq!(layouter[handle].size, *span, "{what}: layouter size");
        let mut covered = vec![0usize; entry.fields.len()];
        for member in members {
            let name = member.name.as_deref().unwrap_or("");
            if name.starts_with('_') {
                continue;
            }
            let offset = member.offset as usize;
            let size = layouter[member.ty].size as usize;
            let found = entry.fields.iter().position(|&(field, at, count)| {
                if count == 1 || name == field {
                    // One field, or a vector of `count` u32s.
                    name == field && offset == at && (count == 1 || size == 4 * count)
                } else {
                    name.starts_with(&format!("{field}_")) && (at..at + 4 * count).contains(&offset) && (offset - at).is_multiple_of(4)
                }
            });
            let index = found.unwrap_or_else(|| panic!("{what}: WGSL field {name} at offset {offset} has no Rust field there"));
            covered[index] += size / 4;
        }
        for (&(field, _, count), &n) in entry.fields.iter().zip(&covered) {
            assert_eq!(n, count, "{what}: Rust field {field} ({count} words) is covered by {n} words of WGSL fields");
        }
    }
}
