// The 2-D workgroup grid every kernel is dispatched on (prepended by src/gpu/shaders.rs). A
// dispatch is at most 65535 workgroups wide, so a long range of work wraps into rows of
// workgroups, numbered row by row; workgroups past the end of the work return at once.

// The linear number of workgroup wg in a grid of nwg workgroups.
fn workgroup_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

// The linear number of invocation li of workgroup wg, with `size` invocations a workgroup.
fn grid_index(wg: vec3<u32>, nwg: vec3<u32>, li: u32, size: u32) -> u32 {
    return workgroup_index(wg, nwg) * size + li;
}

