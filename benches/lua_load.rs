//! What loading a chunk costs in a new state, time and Lua heap: compiling it from text versus loading
//! bytecode dumped once per process. The built-in prelude and ViewList load stripped bytecode
//! (`src/lua/builtin.rs`); site files such as the Contacts app's `main.lua` load bytecode with debug
//! information, so their errors keep `file:line` (`site::LuaFile`, issue 19).
//!
//! `cargo bench --bench lua_load`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mlua::{ChunkMode, Lua};

const PRELUDE: &str = include_str!("../lua/prelude.lua");
const VIEWLIST: &str = include_str!("../lua/viewlist.lua");
const CONTACTS_MAIN: &str = include_str!("../examples/contacts/lua/main.lua");

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
    for (name, src) in [("prelude", PRELUDE), ("viewlist", VIEWLIST), ("contacts_main", CONTACTS_MAIN)] {
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
        let load_full = bin(&full);
        group.bench_function(format!("{name}/bytecode"), |b| b.iter(|| black_box(load_full(&lua))));
    }
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
