#!/usr/bin/env python3
"""A command proposer for `tdev evolve --proposer "command:python3 scripts/proposers/templates.py"`.

Reads one request (docs/proposers.md, protocol 1) on stdin and answers program
templates of the task's signature on stdout: loop skeletons with a counter (the kind
of program the mutators reach slowly), a branch on the sign of a parameter, and a
constant from a sample case. Deterministic: the same request gets the same answer
(the generation picks which parameter drives the loop).

Standard library only.
"""

import json
import sys


def const(ty, v):
    if ty == "i64":
        return f"(i64.const {int(v)})"
    return f"(f64.const {float(v)!r})"


def conv(src, dst, expr):
    """An expression of type src as dst."""
    if src == dst:
        return expr
    if dst == "i64":
        return f"(i64.trunc_sat_f64_s {expr})"
    return f"(f64.convert_i64_s {expr})"


def add(ty, a, b):
    return f"({ty}.add {a} {b})"


def module(params, result, locals_, body):
    ps = " ".join(f"(param {t})" for t in params)
    ls = " ".join(f"(local {t})" for t in locals_)
    return f'(module (func (export "act") {ps} (result {result}) {ls} {body}))'


def loop_template(params, result, drive, step, op):
    """acc = 0; i = clamp(param[drive], 0, 64); while i > 0 { acc = acc OP param[step]; i -= 1 }."""
    n = len(params)
    i, acc = n, n + 1  # the two locals after the parameters
    counter = conv(params[drive], "i64", f"(local.get {drive})") if n else "(i64.const 8)"
    clamp = (
        f"(local.set {i} {counter})"
        f"(if (i64.lt_s (local.get {i}) (i64.const 0)) (then (local.set {i} (i64.const 0))))"
        f"(if (i64.gt_s (local.get {i}) (i64.const 64)) (then (local.set {i} (i64.const 64))))"
    )
    term = conv(params[step], result, f"(local.get {step})") if n else const(result, 1)
    update = f"({result}.{op} (local.get {acc}) {term})"
    body = (
        clamp
        + f"(local.set {acc} {const(result, 0 if op == 'add' else 1)})"
        + f"(block $done (loop $l (br_if $done (i64.le_s (local.get {i}) (i64.const 0)))"
        + f"(local.set {acc} {update})"
        + f"(local.set {i} (i64.sub (local.get {i}) (i64.const 1))) (br $l)))"
        + f"(local.get {acc})"
    )
    return module(params, result, ["i64", result], body)


def sign_template(params, result):
    """param0 if param0 >= 0 else -param0 (the sign branch)."""
    if not params:
        return None
    t = params[0]
    x = "(local.get 0)"
    neg = f"(i64.sub (i64.const 0) {x})" if t == "i64" else f"(f64.neg {x})"
    ge = f"(i64.ge_s {x} (i64.const 0))" if t == "i64" else f"(f64.ge {x} (f64.const 0))"
    return module(params, result, [], conv(t, result, f"(select {x} {neg} {ge})"))


def main():
    req = json.load(sys.stdin)
    task = req["task"]
    params, result = task["params"], task["result"]
    g = int(req.get("generation", 0))
    n = len(params)
    out = []
    drive = g % n if n else 0
    step = (g + 1) % n if n else 0
    out.append(loop_template(params, result, drive, step, "add"))
    out.append(loop_template(params, result, drive, drive, "add"))
    out.append(loop_template(params, result, drive, step, "mul"))
    sign = sign_template(params, result)
    if sign:
        out.append(sign)
    cases = task.get("cases") or []
    if cases and isinstance(cases[0].get("expect"), (int, float)):
        out.append(module(params, result, [], const(result, cases[0]["expect"])))
    budget = int(req.get("budget", len(out)))
    json.dump({"protocol": 1, "candidates": [{"wat": w} for w in out[:budget]]}, sys.stdout)


if __name__ == "__main__":
    main()
