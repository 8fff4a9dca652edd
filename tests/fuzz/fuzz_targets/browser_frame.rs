#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ui_gateway_tracker::fuzzing::fuzz_browser_frame(data));
