//! Caps checked before or around a run: input bytes, group size, log line length.

use crate::{admit, sandbox};
use runtime::{ErrorKind, Input, Member, Outcome, Policy, RunResult, Sandbox, SandboxConfig};

const ECHO_LEN: &str = r#"(module
  (import "agent" "input_len" (func $len (result i32)))
  (memory (export "memory") 1)
  (func (export "act") (result i32) (call $len)))"#;

#[test]
fn input_at_the_cap_runs_and_one_byte_more_is_refused() {
    let sb = sandbox("[limits]\ninput_bytes = 1000\n");
    let agent = admit(&sb, ECHO_LEN);
    let r = sb.run(&agent, Input::Bytes(vec![7; 1000])).expect("run");
    assert_eq!(r.result, Some(RunResult::Status(1000)));
    let e = sb
        .run(&agent, Input::Bytes(vec![7; 1001]))
        .expect_err("refused");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::InputTooLarge {
                bytes: 1001,
                cap: 1000
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("limits.input_bytes"), "{e}");
}

#[test]
fn group_input_over_the_cap_is_refused() {
    let sb = sandbox("[limits]\ninput_bytes = 10\n");
    let agent = admit(&sb, ECHO_LEN);
    let e = sb
        .run_group(vec![Member {
            name: "a".into(),
            agent,
            input: vec![0; 11],
        }])
        .expect_err("refused");
    assert!(matches!(e.kind(), ErrorKind::InputTooLarge { .. }), "{e}");
}

fn group(sb: &Sandbox, n: usize) -> Vec<Member> {
    let agent = admit(sb, ECHO_LEN);
    (0..n)
        .map(|i| Member {
            name: format!("m{i}"),
            agent: agent.clone(),
            input: vec![1; i],
        })
        .collect()
}

#[test]
fn a_group_of_the_pool_size_runs_and_one_more_is_refused() {
    let sb = sandbox("");
    let max = sb.max_group_members().expect("pooling");
    assert_eq!(max, 64);
    let report = sb.run_group(group(&sb, max)).expect("group of the max");
    assert_eq!(report.members.len(), max);
    for (i, m) in report.members.iter().enumerate() {
        assert_eq!(
            m.report.outcome,
            Outcome::Ok,
            "{}: {:?}",
            m.name,
            m.report.trap_message
        );
        assert_eq!(m.report.result, Some(RunResult::Status(i as i32)));
    }
    let e = sb.run_group(group(&sb, max + 1)).expect_err("refused");
    assert!(
        matches!(
            e.kind(),
            ErrorKind::GroupTooLarge {
                members: 65,
                max: 64
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("64"), "{e}");
}

#[test]
fn the_group_bound_follows_the_pool_size() {
    let sb = Sandbox::with_config(
        Policy::default_policy(),
        SandboxConfig::new().allocation(runtime::Allocation::Pooling { slots: 8 }),
    )
    .expect("sandbox");
    assert_eq!(sb.max_group_members(), Some(8));
    assert!(sb.run_group(group(&sb, 8)).is_ok());
    assert!(sb.run_group(group(&sb, 9)).is_err());
}

/// Logs `len` bytes of the data segment, which repeats `pattern`.
fn logger(pattern: &str, len: usize) -> String {
    let reps = len + 1;
    format!(
        r#"(module
          (import "agent" "log" (func $log (param i32 i32)))
          (memory (export "memory") 2)
          (data (i32.const 0) "{data}")
          (func (export "act") (result i32)
            (call $log (i32.const 0) (i32.const {len}))
            i32.const 0))"#,
        data = pattern.repeat(reps)
    )
}

/// The escaped line without its marker is whole escapes: no `\` left dangling.
fn assert_whole_escapes(line: &str) {
    let body = line.split(" …[cut ").next().unwrap_or(line);
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    assert_eq!(hex.len(), 2, "cut inside \\x: {line}");
                }
                Some('u') => {
                    let rest: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    assert!(rest.starts_with('{'), "cut inside \\u: {line}");
                }
                Some('\\' | 'n' | 'r' | 't') => {}
                other => panic!("dangling escape {other:?} in {line}"),
            }
        }
    }
}

#[test]
fn a_log_line_of_hostile_bytes_stays_within_the_cap_once_escaped() {
    let sb = sandbox("[limits]\nmodule_bytes = 65536\n");
    let cap = sb.policy().limits.log_line_bytes as usize;
    // Bytes that escape to 4 (\xff), 6 (\u{1b}) and 8 (\u{202e}) characters.
    for pattern in ["\\ff", "\\1b", "\\e2\\80\\ae", "a\\ffb\\1b"] {
        let agent = admit(&sb, &logger(pattern, 5000));
        let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
        assert_eq!(r.outcome, Outcome::Ok);
        let line = &r.logs[0];
        assert!(line.len() <= cap, "{pattern}: {} bytes: {line}", line.len());
        assert!(
            line.ends_with(" bytes]"),
            "{pattern}: the cut is marked: {line}"
        );
        assert!(
            line.len() > cap - 40,
            "{pattern}: the line uses the room: {}",
            line.len()
        );
        assert_whole_escapes(line);
    }
}

#[test]
fn a_log_line_that_fits_once_escaped_is_kept_whole() {
    let sb = sandbox("[limits]\nlog_line_bytes = 40\nmodule_bytes = 65536\n");
    // 10 bytes escaping to 40 characters: kept whole, no marker.
    let agent = admit(&sb, &logger("\\ff", 10));
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(r.logs[0], "\\xff".repeat(10));
    // 11 bytes: cut, marked, within 40.
    let agent = admit(&sb, &logger("\\ff", 11));
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert!(r.logs[0].len() <= 40, "{}", r.logs[0]);
    assert!(r.logs[0].ends_with("bytes]"), "{}", r.logs[0]);
    // A cap too small for the marker: just cut.
    let sb = sandbox("[limits]\nlog_line_bytes = 6\nmodule_bytes = 65536\n");
    let agent = admit(&sb, &logger("\\ff", 11));
    let r = sb.run(&agent, Input::Bytes(vec![])).expect("run");
    assert_eq!(r.logs[0], "\\xff");
}
