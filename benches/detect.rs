//! P5 (BENCHMARKS.md): change detection through the Lua resolver.
//!
//! Setup: `rows` = R tables × F string fields `f0…`; variable 1, R variables `rows.<i>` and F variables
//! `f<j>` under each, all active and computed. One iteration = one inbound batch with one action whose
//! Lua method assigns a new string to one field, plus the pass and the update assembly (messages for
//! the connection, encoded as a server frame): exactly one update. Sizes 100 / 1,000 / 10,000 (the
//! target: median < 2 ms at 10,000). Report only: the same pass when nothing changed, and 10,000
//! variables whose paths are `m()` calls.
//!
//! `cargo bench --bench detect`

mod common;

use std::hint::black_box;

use common::create;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::Value;
use ui_gateway::ids::{VarId, VendedId};
use ui_gateway::lua::{LuaBackend, LuaConfig};
use ui_gateway::protocol::{encode_server_frame, ServerMessage};
use ui_gateway::tracker::Writer;

const CONN: u64 = 1;
const ACTION: i64 = 1_000_000;

/// `rows` tables of `fields` string fields; `bump()` assigns a new string to one field of one row.
fn main_lua(rows: usize, fields: usize) -> String {
    format!(
        r#"
Row = {{}}
Row.__index = Row
function Row:get() return self.f0 end
local Bench = {{type = "Bench"}}
Bench.__index = Bench
local rows = {{}}
for r = 1, {rows} do
  local row = setmetatable({{}}, Row)
  for f = 0, {fields} - 1 do row["f" .. f] = "r" .. r .. "f" .. f end
  rows[r] = row
end
local n = 0
function Bench:bump()
  n = n + 1
  self.rows[{target_row}].f7 = "v" .. n
end
session:createAppVariable(setmetatable({{rows = rows}}, Bench))
"#,
        target_row = rows.min(43)
    )
}

/// Variable 1, `rows` row variables and `fields` variables under each (paths `f<j>`, or `get()` when
/// `calls`), plus the `bump()` action; one settling pass.
fn setup(rows: usize, fields: usize, calls: bool) -> LuaBackend {
    assert!(fields > 7, "bump() writes f7");
    let mut lua = LuaBackend::new(VendedId(1), &LuaConfig::default(), Default::default()).expect("Lua state");
    lua.load_main(&main_lua(rows, fields)).expect("main.lua");
    lua.tracker_mut().set_active(VarId::APP, true);
    let mut id = 2;
    for r in 0..rows {
        let row = id;
        create(&mut lua, row, 1, &format!("rows.{r}"), Some("r"));
        id += 1;
        for f in 0..fields {
            let path = if calls { "get()".to_string() } else { format!("f{f}") };
            create(&mut lua, id, row, &path, Some("r"));
            id += 1;
        }
    }
    create(&mut lua, ACTION, 1, "bump()", Some("action"));
    lua.begin_phase();
    lua.tracker_mut().detect_changes();
    lua
}

/// One inbound batch (the action), the pass, the connection's messages and their frame.
fn action_batch(lua: &mut LuaBackend) -> (usize, String) {
    lua.begin_phase();
    let errors = lua.tracker_mut().update(VarId(ACTION), &[], Some(&Value::Null), Writer::Browser, Some(CONN));
    debug_assert!(errors.is_empty(), "{errors:?}");
    pass(lua)
}

fn pass(lua: &mut LuaBackend) -> (usize, String) {
    lua.begin_phase();
    let changes = lua.tracker_mut().detect_changes();
    let mut out: Vec<ServerMessage> = Vec::new();
    for item in &changes.items {
        item.messages_for(Some(CONN), &mut out);
    }
    let frame = if out.is_empty() { String::new() } else { encode_server_frame(&out) };
    (out.len(), frame)
}

fn bench_detect(c: &mut Criterion) {
    let mut group = c.benchmark_group("detect/one_change");
    // (total active readable variables, rows, fields per row): rows × (1 + fields) = total.
    for (total, rows, fields) in [(100, 10, 9), (1_000, 10, 99), (10_000, 100, 99)] {
        let mut lua = setup(rows, fields, false);
        assert_eq!(lua.tracker().len(), total + 2, "var 1 + {total} + the action");
        let (n, frame) = action_batch(&mut lua);
        assert_eq!(n, 1, "exactly one update: {frame}");
        group.bench_function(BenchmarkId::from_parameter(total), |b| b.iter(|| black_box(action_batch(&mut lua))));
    }
    group.finish();

    let mut group = c.benchmark_group("detect/report_only");
    let mut lua = setup(100, 99, false);
    assert_eq!(pass(&mut lua).0, 0);
    group.bench_function("no_change_10000", |b| b.iter(|| black_box(pass(&mut lua))));
    let mut lua = setup(100, 99, true);
    assert_eq!(pass(&mut lua).0, 0);
    group.bench_function("no_change_9900_method_paths", |b| b.iter(|| black_box(pass(&mut lua))));
    group.finish();
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
