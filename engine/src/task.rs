//! Evolution tasks (`fixtures/tasks/*.toml`, or `.json` with the same fields).

use crate::error::{ErrorKind, Result};
use runtime::{Param, Value};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How the error of one case is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// |got − expected|
    Abs,
    /// (got − expected)²
    Squared,
    /// 0 when equal (bit-equal for f64), else 1
    Exact,
}

/// One case: arguments and the expected result.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// Arguments, typed by the task's params.
    pub args: Vec<Value>,
    /// Expected result.
    pub expect: Value,
}

/// A task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Its name.
    pub name: String,
    /// Parameter types of `act`.
    pub params: Vec<Param>,
    /// Result type of `act`.
    pub result: Param,
    /// The error metric.
    pub metric: Metric,
    /// Mean train error at or below this counts as solved.
    pub success_threshold: f64,
    /// Training cases.
    pub cases: Vec<Case>,
    /// Held-out cases, reported as the test error.
    pub test_cases: Vec<Case>,
    /// Fuel one case may spend ([`Task::DEFAULT_FUEL_PER_CASE`] unless the task names
    /// one). A case that runs out of it is a wrong answer with [`Task::worst_error`],
    /// not a safety event. Never more than the policy's `limits.fuel_per_call`: a
    /// larger budget is cut to it (and running out of that is the policy's limit).
    pub fuel_per_case: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: String,
    params: Vec<String>,
    result: String,
    error: Metric,
    success_threshold: f64,
    cases: Vec<RawCase>,
    #[serde(default)]
    test_cases: Vec<RawCase>,
    #[serde(default)]
    fuel_per_case: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    args: Vec<serde_json::Value>,
    expect: serde_json::Value,
}

fn bad(msg: String) -> crate::Error {
    ErrorKind::Task(msg).into()
}

fn param(s: &str, field: &str) -> Result<Param> {
    match s {
        "i64" => Ok(Param::I64),
        "f64" => Ok(Param::F64),
        other => Err(bad(format!("`{field}`: {other:?} is not i64 or f64"))),
    }
}

fn value(v: &serde_json::Value, ty: Param, field: &str) -> Result<Value> {
    match ty {
        Param::I64 => v
            .as_i64()
            .map(Value::I64)
            .ok_or_else(|| bad(format!("`{field}`: {v} is not an i64"))),
        Param::F64 => {
            let f = match v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.parse::<f64>().ok(),
                _ => None,
            };
            f.map(|f| Value::F64(f.to_bits()))
                .ok_or_else(|| bad(format!("`{field}`: {v} is not an f64")))
        }
    }
}

impl Task {
    /// The fuel one case may spend when the task does not say: enough for loops of a
    /// few thousand steps over the inputs of the shipped tasks, small enough that a
    /// population of endless loops is scored quickly.
    pub const DEFAULT_FUEL_PER_CASE: u64 = 10_000;

    /// The error a case gets when its answer is no answer (out of its fuel budget):
    /// 1 for `exact`, else the 1e30 a NaN or infinite result gets.
    pub fn worst_error(&self) -> f64 {
        match self.metric {
            Metric::Exact => 1.0,
            Metric::Abs | Metric::Squared => 1e30,
        }
    }

    /// The fuel one case may spend under a policy's `fuel_per_call`: the task's budget,
    /// cut to the policy's.
    pub fn case_fuel(&self, fuel_per_call: u64) -> u64 {
        self.fuel_per_case.min(fuel_per_call)
    }

    /// Reads a task file (`.toml`, or `.json`).
    pub fn from_file(path: &Path) -> Result<Task> {
        // The caller names the file (`task FILE: cannot read the file: …`).
        let text = std::fs::read_to_string(path).map_err(ErrorKind::TaskRead)?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Task::parse(&text, json)
    }

    /// Parses a task from TOML (or JSON).
    pub fn parse(text: &str, json: bool) -> Result<Task> {
        let raw: RawTask = if json {
            serde_json::from_str(text).map_err(ErrorKind::TaskJson)?
        } else {
            toml::from_str(text).map_err(ErrorKind::TaskToml)?
        };
        let params = raw
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| param(p, &format!("params[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        if params.len() > 8 {
            return Err(bad("`params`: at most 8".into()));
        }
        let result = param(&raw.result, "result")?;
        if !(raw.success_threshold.is_finite() && raw.success_threshold >= 0.0) {
            return Err(bad("`success_threshold` must be a finite number ≥ 0".into()));
        }
        let cases_of = |list: &[RawCase], field: &str| -> Result<Vec<Case>> {
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    if c.args.len() != params.len() {
                        return Err(bad(format!(
                            "`{field}[{i}].args`: {} values for {} params",
                            c.args.len(),
                            params.len()
                        )));
                    }
                    Ok(Case {
                        args: c
                            .args
                            .iter()
                            .zip(&params)
                            .map(|(v, p)| value(v, *p, &format!("{field}[{i}].args")))
                            .collect::<Result<_>>()?,
                        expect: value(&c.expect, result, &format!("{field}[{i}].expect"))?,
                    })
                })
                .collect()
        };
        let cases = cases_of(&raw.cases, "cases")?;
        if cases.is_empty() {
            return Err(bad("`cases`: at least one case".into()));
        }
        let test_cases = cases_of(&raw.test_cases, "test_cases")?;
        if raw.fuel_per_case == Some(0) {
            return Err(bad("`fuel_per_case` must be at least 1".into()));
        }
        Ok(Task {
            fuel_per_case: raw.fuel_per_case.unwrap_or(Task::DEFAULT_FUEL_PER_CASE),
            name: raw.name,
            params,
            result,
            metric: raw.error,
            success_threshold: raw.success_threshold,
            cases,
            test_cases,
        })
    }

    /// The error of one result against one expected value, never NaN (a NaN or
    /// infinite difference counts as 1e30).
    pub fn error(&self, got: Value, expect: Value) -> f64 {
        let diff = match (got, expect) {
            (Value::I64(g), Value::I64(e)) => (g as i128 - e as i128) as f64,
            (Value::F64(g), Value::F64(e)) => {
                if self.metric == Metric::Exact {
                    return if g == e { 0.0 } else { 1.0 };
                }
                f64::from_bits(g) - f64::from_bits(e)
            }
            _ => return 1e30,
        };
        let err = match self.metric {
            Metric::Abs => diff.abs(),
            Metric::Squared => diff * diff,
            Metric::Exact => {
                if diff == 0.0 {
                    0.0
                } else {
                    1.0
                }
            }
        };
        if err.is_finite() { err.min(1e30) } else { 1e30 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let t = Task::parse(
            "name = \"gcd\"\nparams = [\"i64\", \"i64\"]\nresult = \"i64\"\nerror = \"abs\"\nsuccess_threshold = 0.0\ncases = [ { args = [12, 18], expect = 6 } ]\n",
            false,
        )
        .unwrap();
        assert_eq!(t.cases[0].expect, Value::I64(6));
        assert_eq!(t.error(Value::I64(4), Value::I64(6)), 2.0);
        assert_eq!(
            t.error(Value::I64(i64::MIN), Value::I64(i64::MAX)),
            1.8446744073709552e19
        );
        assert!(Task::parse("name = 1", false).is_err());
        let e = Task::parse(
            "name = \"x\"\nparams = [\"i32\"]\nresult = \"i64\"\nerror = \"abs\"\nsuccess_threshold = 0.0\ncases = []\n",
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("params[0]"));
        let j = Task::parse(
            r#"{"name":"q","params":["f64"],"result":"f64","error":"squared","success_threshold":0.01,"cases":[{"args":[0.5],"expect":"nan"}]}"#,
            true,
        )
        .unwrap();
        assert!(f64::from_bits(j.cases[0].expect.bits()).is_nan());
    }
}
