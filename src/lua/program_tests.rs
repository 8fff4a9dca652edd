//! Random short programs over the library the sandbox keeps, run under the budget: every phase ends
//! (with a result, a Lua error, `lua-timeout` or `lua-memory`) well within the watchdog, however the
//! program combines loops, protected calls, coroutines and library functions.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{LuaBackend, LuaConfig, TimeLimits};
use crate::ids::VendedId;

/// The phase time the programs run under, and the bound every phase must end within (the watchdog's
/// job would start there).
const PHASE: Duration = Duration::from_millis(150);
const WATCHDOG: Duration = Duration::from_secs(3);

fn backend() -> LuaBackend {
    let config = LuaConfig {
        memory_limit: 16 << 20,
        instruction_budget: 20_000_000,
        times: TimeLimits { phase: PHASE, item: PHASE * 2 },
        ..LuaConfig::default()
    };
    LuaBackend::new(VendedId(1), &config, Default::default()).unwrap()
}

/// A string expression: literals that include pattern-hostile text.
fn string_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("('a'):rep(30)".to_string()),
        Just("(' '):rep(5000) .. 'x'".to_string()),
        Just("('ab'):rep(2000)".to_string()),
        Just("'hello world'".to_string()),
        Just("('.-'):rep(40) .. 'b'".to_string()),
        Just("'%w+'".to_string()),
        Just("'(a*)*b'".to_string()),
        Just("'%b()'".to_string()),
        Just("'[%a%d]-x$'".to_string()),
        (1u32..100_000).prop_map(|n| format!("('x'):rep({n})")),
    ]
}

/// One library call over the kept functions, with arguments from the hostile end of their ranges.
fn call() -> impl Strategy<Value = String> {
    let s = string_expr;
    prop_oneof![
        (s(), s()).prop_map(|(a, p)| format!("string.find({a}, {p})")),
        (s(), s()).prop_map(|(a, p)| format!("string.match({a}, {p})")),
        (s(), s()).prop_map(|(a, p)| format!("for w in string.gmatch({a}, {p}) do end")),
        (s(), s()).prop_map(|(a, p)| format!("string.gsub({a}, {p}, '%0%0')")),
        (s(), 0i64..1_000_000).prop_map(|(a, n)| format!("string.rep({a}, {n})")),
        (1i64..4_000_000_000).prop_map(|n| format!("table.move({{}}, 1, {n}, 1, {{}})")),
        (1u32..200_000).prop_map(|n| format!(
            "local t = {{}} for i = 1, {n} do t[i] = i end table.sort(t, function(a, b) return a > b end)"
        )),
        (1u32..200_000).prop_map(|n| format!("local t = {{}} for i = 1, {n} do t[i] = 'x' end table.concat(t, ',')")),
        Just("string.format('%99d %-99s', 1, 'x')".to_string()),
        Just(
            "utf8.char(table.unpack((function() local t = {} for i = 1, 200 do t[i] = 0x10FFFF end return t end)()))"
                .to_string()
        ),
        Just("ui.json_encode({[2^40] = 1, [math.maxinteger] = 2})".to_string()),
        (1u32..5_000).prop_map(|n| format!("ui.json_decode(('[' ):rep({n}) .. (']'):rep({n}))")),
        Just("setmetatable({}, {__gc = function() while true do end end})".to_string()),
        Just("session:setTimeout(function() end, 1e300)".to_string()),
    ]
}

/// A statement: a call, or a call wrapped in the constructs that used to escape the budget.
fn statement() -> impl Strategy<Value = String> {
    call().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|b| format!("for i = 1, 3 do {b} end")),
            inner.clone().prop_map(|b| format!("pcall(function() {b} end)")),
            inner.clone().prop_map(|b| format!("while true do pcall(function() {b} end) end")),
            inner.clone().prop_map(|b| format!("xpcall(function() {b} end, function(e) return e end)")),
            inner.clone().prop_map(|b| format!("coroutine.wrap(function() {b} end)()")),
            inner.clone().prop_map(|b| format!("coroutine.resume(coroutine.create(function() {b} end))")),
            inner.prop_map(|b| format!("while true do {b} end")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_phase_ends_within_the_watchdog(program in statement()) {
        let b = backend();
        b.begin_item();
        let started = Instant::now();
        let _ = b.eval::<()>(&program);
        let elapsed = started.elapsed();
        b.end_item();
        prop_assert!(elapsed < WATCHDOG, "{program} ran {elapsed:?}");
        // The state still works afterwards.
        prop_assert_eq!(b.eval::<i64>("return 1 + 1").unwrap(), 2);
    }
}
