//! Command-line helpers shared by the examples (`#[path]`-included: not an example itself).

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Creating a client panics (on a runtime thread) when the device is absent; that means "skip".
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub fn available(probe: impl FnOnce()) -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = catch_unwind(AssertUnwindSafe(probe)).is_ok();
    std::panic::set_hook(hook);
    ok
}

/// `--name value` from the command line.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}
