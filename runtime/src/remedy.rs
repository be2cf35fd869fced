//! One-line remedies: for a finding word or an outcome word, what an author (or an
//! operator) can do about it, where there is something to do.

/// The remedy for a finding (`memory_cap`, `pattern:infinite_loop`, …, with its detail)
/// or a run outcome (`out_of_fuel`, …), if there is one.
pub fn remedy(word: &str, detail: &str) -> Option<&'static str> {
    Some(match word {
        "malformed" => "not a WebAssembly module: give the .wasm (or .wat) a build wrote",
        "size_cap" => {
            "too large: build with opt-level = \"z\", lto = true, strip = true, panic = \"abort\" and no core::fmt (tdev new's profile); or raise limits.module_bytes"
        }
        "feature_denied" => {
            "uses a Wasm feature the policy denies: build for wasm32-unknown-unknown without extra target features, or allow it under [features]"
        }
        "import_denied" if detail.contains("wasi") => {
            "imports WASI: a Rust agent must be #![no_std] and use agent_sdk for input and output"
        }
        "import_denied" => {
            "imports a function the policy does not allow: only the `agent` host functions of ABI v1"
        }
        "export_missing" if detail.contains("memory") => {
            "the bytes form needs an exported `memory` (agent_sdk::act! exports it)"
        }
        "export_missing" => "export `act` (agent_sdk::act! writes it)",
        "signature_invalid" => {
            "`act` is () -> i32 (bytes form) or up to eight i64/f64 to one i64/f64 (typed form)"
        }
        "memory_cap" if detail.contains("memories") => {
            "one linear memory only (limits.memories), unless the policy allows more"
        }
        "memory_cap" => {
            "a Rust agent: link with -C link-arg=-zstack-size=65536 in .cargo/config.toml (as tdev new writes it); rustc's default 1 MiB stack fills the cap"
        }
        "table_cap" => {
            "declare a smaller table (limits.table_elements) or fewer tables (limits.tables)"
        }
        "cost_cap" => {
            "the module's shape (functions, locals, nesting) is over the policy's cost limits: make it simpler"
        }
        "text_cap" => {
            "the text form is over limits.text_bytes: patterns saw only its start; make the module smaller"
        }
        w if w.starts_with("pattern:") => {
            "matches a pattern the policy flags: read its text form (tdev quarantine show) before releasing it"
        }
        "out_of_fuel" => {
            "ran out of fuel (limits.fuel_per_call): bound its loops, or raise the limit if the work is real"
        }
        "deadline" => {
            "ran past limits.wall_clock_ms: bound its loops, or raise the limit if the work is real"
        }
        "memory_limit" => {
            "memory.grow past limits.memory_bytes traps: use fixed buffers, or raise the limit"
        }
        "table_limit" => "table.grow past limits.table_elements traps",
        "stack_overflow" => "recursed past limits.stack_bytes: turn deep recursion into a loop",
        "output_limit" => {
            "wrote past limits.output_bytes: write less, or (large inputs) set [quarantine] output_limit_from_large_input"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::remedy;

    #[test]
    fn every_limit_and_structural_finding_has_a_remedy() {
        for w in [
            "malformed",
            "size_cap",
            "feature_denied",
            "import_denied",
            "export_missing",
            "signature_invalid",
            "memory_cap",
            "table_cap",
            "cost_cap",
            "text_cap",
            "pattern:x",
            "out_of_fuel",
            "deadline",
            "memory_limit",
            "table_limit",
            "stack_overflow",
            "output_limit",
        ] {
            let r = remedy(w, "").unwrap_or_else(|| panic!("{w}"));
            assert!(!r.contains('\n') && r.len() < 200, "{w}: {r}");
        }
        assert!(remedy("ok", "").is_none());
        assert!(remedy("unreachable", "").is_none());
        assert!(
            remedy("memory_cap", "memory 0 declares a minimum of 1245184 bytes")
                .is_some_and(|r| r.contains("-zstack-size"))
        );
        assert!(
            remedy("import_denied", "wasi_snapshot_preview1.fd_write")
                .is_some_and(|r| r.contains("no_std"))
        );
    }
}
