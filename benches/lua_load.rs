//! Evidence for a Lua state creation tuning that lives in `src/lua` (not changed here): compiling the
//! embedded prelude from text in every new state versus loading it as bytecode dumped once per process
//! (stripped of debug info). Measures the load (compile) step only, time and Lua heap.
//!
//! `cargo bench --bench lua_load`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mlua::{ChunkMode, Lua};

const PRELUDE: &str = include_str!("../lua/prelude.lua");
const VIEWLIST: &str = include_str!("../lua/viewlist.lua");

fn fresh() -> Lua {
    // Binary chunks need the unsafe constructor; the bytes come from this process's own dump.
    unsafe { Lua::unsafe_new() }
}

fn heap_of(load: impl Fn(&Lua) -> mlua::Function) -> usize {
    let lua = fresh();
    lua.gc_collect().unwrap();
    let before = lua.used_memory();
    let f = load(&lua);
    lua.gc_collect().unwrap();
    let after = lua.used_memory();
    drop(f);
    after - before
}

fn bench_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("lua/load_prelude");
    for (name, src) in [("prelude", PRELUDE), ("viewlist", VIEWLIST)] {
        let compiler = fresh();
        let stripped = compiler.load(src).into_function().unwrap().dump(true);
        let full = compiler.load(src).into_function().unwrap().dump(false);
        let text = |lua: &Lua| lua.load(src).set_mode(ChunkMode::Text).into_function().unwrap();
        let bin = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            move |lua: &Lua| lua.load(&bytes[..]).set_mode(ChunkMode::Binary).into_function().unwrap()
        };
        println!(
            "{name}: Lua heap of the loaded chunk: text {} B, bytecode {} B, stripped bytecode {} B",
            heap_of(text),
            heap_of(bin(&full)),
            heap_of(bin(&stripped))
        );
        let lua = fresh();
        group.bench_function(format!("{name}/text"), |b| b.iter(|| black_box(text(&lua))));
        let load_stripped = bin(&stripped);
        group.bench_function(format!("{name}/stripped_bytecode"), |b| b.iter(|| black_box(load_stripped(&lua))));
    }
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
