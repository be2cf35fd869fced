#!/usr/bin/env python3
"""Writes the integer program-synthesis tasks in fixtures/tasks/ and fixtures/psb-reference.toml.

Each problem is one function below: its statement and source, its published edge cases,
its input sampler (drawn the suite's way, from a random.Random with a fixed seed), and a
straightforward reference solution that computes every expected output. The problems
come from PSB1 (Helmuth & Spector, "General Program Synthesis Benchmark Suite",
GECCO 2015), PSB2 (Helmuth & Kelly, "PSB2: The Second Program Synthesis Benchmark
Suite", GECCO 2021) and classic GP (Koza, "Genetic Programming", 1992), each fitted to
what the engine evolves: one Wasm function `act(i64, ...) -> i64` with 1 to 8 params.

    python3 scripts/gen_tasks.py          # (re)writes the files
    python3 scripts/gen_tasks.py --check  # exits 1 if a file on disk differs

Standard library only; running it twice gives byte-identical files.
"""

import argparse
import os
import random
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Optional

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TASK_DIR = os.path.join("fixtures", "tasks")
REFERENCE_FILE = os.path.join("fixtures", "psb-reference.toml")

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

# Fuel (see `fuel_for`): about 10 fuel per loop iteration plus about 100 for the rest of
# a straightforward solution, times a margin of 4, never less than the engine's default
# budget and never more than MAX_FUEL.
FUEL_PER_ITERATION = 10
FUEL_OVERHEAD = 100
FUEL_MARGIN = 4
FUEL_FLOOR = 10_000  # engine::task::Task::DEFAULT_FUEL_PER_CASE
MODULE_CAP = 6_656  # limits.module_bytes of the default policy
MAX_FUEL = 100_000

PSB1 = 'PSB1: Helmuth & Spector, "General Program Synthesis Benchmark Suite", GECCO 2015'
PSB2 = 'PSB2: Helmuth & Kelly, "PSB2: The Second Program Synthesis Benchmark Suite", GECCO 2021'
KOZA = 'classic GP: Koza, "Genetic Programming: On the Programming of Computers by Means of Natural Selection", MIT Press, 1992'
PSB1_IMPL = "the suite's reference implementation (lspector/Clojush, src/clojush/problems/software/{}.clj) and its data-set notes (thelmuth/program-synthesis-benchmark-datasets, datasets/{}/README.md)"
PSB2_IMPL = "the suite's reference implementation (lspector/Clojush, src/clojush/problems/software/benchmarks_v2/{}.clj)"
PSB2_RESULTS = (
    'Helmuth & Kelly, "PSB2: The Second Program Synthesis Benchmark Suite", GECCO 2021 '
    "(arXiv:2106.06086), table of PushGP results (column Succ.), as transcribed from the "
    "paper in vadim0x60/seidr, psb2-meta/results.tsv"
)
PSB2_RUNS_NOTE = (
    "selection is lexicase as set in the suite's reference settings (:parent-selection in "
    "lspector/Clojush, benchmarks_v2/*.clj). pushgp_runs is left out: the transcription "
    "holds only the success counts and the number of runs per problem could not be read "
    "from a stored copy of the paper"
)
PSB1_NOT_FOUND = (
    "not found: the GECCO 2015 paper reports PushGP successes (lexicase, tournament and "
    "implicit fitness sharing) for this problem, but no stored copy of its results table "
    "could be read, so no figure is given"
)


@dataclass
class Task:
    """One generated task: what the TOML file holds, and how it was made."""

    name: str
    params: int
    error: str  # abs | squared | exact
    statement: str
    source: str
    adaptation: str
    ranges: str
    cases_note: str
    train: list
    test: list
    solve: Callable[..., int]
    # Loop iterations a straightforward solution runs on the given args; None when a
    # straightforward solution has no loop.
    loop_iters: Optional[Callable[..., int]]
    loop_desc: str
    reference: dict = field(default_factory=dict)
    exhaustive: bool = False  # held-out = the whole (small) input space


def fresh(draw, n, seen):
    """n inputs from draw() that are not in seen (and not repeated); adds them to seen."""
    out = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 1000 * (n + 10):
            raise RuntimeError("input space too small for distinct draws")
        x = tuple(draw())
        if x in seen:
            continue
        seen.add(x)
        out.append(x)
    return out


# --------------------------------------------------------------------------- PSB2


def gcd():
    def solve(a, b):
        while b:
            a, b = b, a % b
        return a

    def iters(a, b):
        k = 0
        while b:
            a, b = b, a % b
            k += 1
        return k

    rng = random.Random(1001)
    edge = [(1, 1), (4, 400000), (54, 24), (4200, 3528), (820000, 63550), (123456, 654321)]
    seen = set(edge)

    def draw():
        return (rng.randint(1, 1_000_000), rng.randint(1, 1_000_000))

    train = edge + fresh(draw, 194, seen)
    test = fresh(draw, 2000, seen)
    return Task(
        name="gcd",
        params=2,
        error="abs",
        statement="Given two integers, return the largest integer that divides each of the integers evenly.",
        source=f"{PSB2} (problem GCD); {PSB2_IMPL.format('gcd')}.",
        adaptation="None: two integers in, one integer out, as in the suite. The error is the absolute difference, as in the suite.",
        ranges="both inputs in [1, 1,000,000].",
        cases_note=(
            "training: the suite's 6 edge cases, (1, 1), (4, 400000), (54, 24), (4200, 3528), "
            "(820000, 63550), (123456, 654321), and 194 random pairs; held-out: 2,000 random "
            "pairs, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=iters,
        loop_desc="Euclid's remainder loop",
        reference={
            "pushgp_successes": 8,
            "selection": "lexicase",
            "source": PSB2_RESULTS,
            "note": "same problem and input ranges as in the suite. " + PSB2_RUNS_NOTE + ".",
        },
    )


def fizz_buzz():
    def solve(n):
        if n % 15 == 0:
            return -3
        if n % 3 == 0:
            return -1
        if n % 5 == 0:
            return -2
        return n

    rng = random.Random(1002)
    edge = [(n,) for n in range(1, 21)] + [(49995,), (49998,), (49999,), (50000,)]
    seen = set(edge)

    def draw():
        return (rng.randint(1, 1_000_000),)

    train = edge + fresh(draw, 176, seen)
    test = fresh(draw, 2000, seen)
    return Task(
        name="fizz_buzz",
        params=1,
        error="exact",
        statement=(
            'Given an integer x, return "Fizz" if x is divisible by 3, "Buzz" if x is divisible '
            'by 5, "FizzBuzz" if x is divisible by 3 and 5, and a string version of x if none '
            "of the above hold."
        ),
        source=f"{PSB2} (problem Fizz Buzz); {PSB2_IMPL.format('fizz_buzz')}.",
        adaptation=(
            "the string output is encoded as an integer: x itself for the string version of x, "
            '-1 for "Fizz", -2 for "Buzz", -3 for "FizzBuzz" (lossless, since x >= 1). The '
            "suite scores the Levenshtein distance between strings; here a case is right or "
            "wrong (exact)."
        ),
        ranges="x in [1, 1,000,000].",
        cases_note=(
            "training: the suite's 24 edge cases (1 to 20, 49995, 49998, 49999, 50000) and 176 "
            "random inputs; held-out: 2,000 random inputs, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=None,
        loop_desc="two remainders and a few comparisons",
        reference={
            "pushgp_successes": 25,
            "selection": "lexicase",
            "source": PSB2_RESULTS,
            "note": (
                "the figure is for the suite's string-output version scored by Levenshtein "
                "distance; this task encodes the strings as integers and scores right/wrong. "
                + PSB2_RUNS_NOTE
                + "."
            ),
        },
    )


def coin_sums():
    def coins(n):
        quarters, n = divmod(n, 25)
        dimes, n = divmod(n, 10)
        nickels, pennies = divmod(n, 5)
        return pennies, nickels, dimes, quarters

    def solve(n):
        return sum(coins(n))

    def iters(n):
        # the suite's reference loop takes one coin per iteration
        return sum(coins(n))

    rng = random.Random(1003)
    edge = [(1,), (5,), (10,), (25,), (41,), (109,), (10000,)]
    seen = set(edge)

    def draw():
        return (rng.randint(1, 10_000),)

    train = edge + fresh(draw, 193, seen)
    test = fresh(draw, 2000, seen)
    return Task(
        name="coin_sums",
        params=1,
        error="abs",
        statement=(
            "Given a number of cents, find the fewest number of US coins (pennies, nickels, "
            "dimes, quarters) needed to make that amount, and return the number of each type "
            "of coin as a separate output."
        ),
        source=f"{PSB2} (problem Coin Sums); {PSB2_IMPL.format('coin_sums')}.",
        adaptation=(
            "the suite asks for four outputs (pennies, nickels, dimes, quarters); a task has "
            "one, so this one returns their sum, the fewest number of coins that make the "
            "amount. The error is the absolute difference, as the suite's is for each output."
        ),
        ranges="cents in [1, 10,000].",
        cases_note=(
            "training: the suite's 7 edge cases (1, 5, 10, 25, 41, 109, 10000) and 193 random "
            "inputs; held-out: 2,000 random inputs, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=iters,
        loop_desc="the suite's greedy loop that takes one coin per iteration",
        reference={
            "source": PSB2_RESULTS,
            "note": (
                "adapted problem (one output, the total coin count, instead of four counts): "
                "no published figure. For the suite's four-output problem the PSB2 table gives "
                "2 PushGP successes (lexicase); that figure does not apply to this task."
            ),
        },
    )


def square_digits():
    def solve(n):
        return int("".join(str(int(d) ** 2) for d in str(n)))

    def iters(n):
        return len(str(n))

    rng = random.Random(1004)
    hard = [0, 1, 2, 3, 4, 5, 7, 9, 10, 12, 16, 24, 35, 46, 57, 68, 79, 80, 92, 98,
            100, 185, 231, 372, 408, 794, 321012, 987654, 999999, 1000000]
    edge = [(n,) for n in hard]
    seen = set(edge)

    def draw():
        return (rng.randint(0, 999_998),)

    train = edge + fresh(draw, 170, seen)
    test = fresh(draw, 2000, seen)
    return Task(
        name="square_digits",
        params=1,
        error="exact",
        statement=(
            "Given a positive integer, square each digit and concatenate the squares into a "
            "returned string."
        ),
        source=f"{PSB2} (problem Square Digits); {PSB2_IMPL.format('square_digits')}.",
        adaptation=(
            "the string output is read as a decimal integer (e.g. 9119 -> \"811181\" -> "
            "811181). This is lossless: the first square is non-zero for every input but 0, "
            "whose string \"0\" reads as 0, and the longest string (12 digits) fits an i64. "
            "The suite scores the Levenshtein distance between strings; here a case is right "
            "or wrong (exact)."
        ),
        ranges="input in [0, 1,000,000] (random inputs in [0, 999,998], as in the suite).",
        cases_note=(
            "training: the suite's 30 hard-coded inputs (0, 1, 2, 3, 4, 5, 7, 9, 10, 12, 16, "
            "24, 35, 46, 57, 68, 79, 80, 92, 98, 100, 185, 231, 372, 408, 794, 321012, 987654, "
            "999999, 1000000) and 170 random inputs; held-out: 2,000 random inputs, none of "
            "them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=iters,
        loop_desc="a loop over the input's digits",
        reference={
            "pushgp_successes": 0,
            "selection": "lexicase",
            "source": PSB2_RESULTS,
            "note": (
                "the figure is for the suite's string-output version scored by Levenshtein "
                "distance; this task reads the string as an integer and scores right/wrong. "
                + PSB2_RUNS_NOTE
                + "."
            ),
        },
    )


def fuel_cost():
    slots = 8

    def solve(*xs):
        return sum(x // 3 - 2 for x in xs if x != 0)

    def pad(v):
        return tuple(v) + (0,) * (slots - len(v))

    rng = random.Random(1005)
    singles = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 9998, 9999, 10000]
    pairs = [(6, 6), (9, 14), (9, 15), (14, 9), (15, 9), (32, 32), (33, 33),
             (10000, 9), (9, 10000), (10000, 10000)]
    longs = [[v] * slots for v in (6, 7, 8, 9, 10, 11, 12, 13, 9998, 9999, 10000)]
    longs.append([9] * (slots - 1))
    edge = [pad([v]) for v in singles] + [pad(p) for p in pairs] + [pad(v) for v in longs]
    seen = set(edge)

    def vector(lo, hi):
        return lambda: pad([rng.randint(6, 10_000) for _ in range(rng.randint(lo, hi))])

    short, longer = vector(1, 5), vector(6, slots)
    train = edge + fresh(short, 75, seen) + fresh(longer, 88, seen)
    test = fresh(short, 1000, seen) + fresh(longer, 1000, seen)
    return Task(
        name="fuel_cost",
        params=slots,
        error="abs",
        statement=(
            "Given a vector of positive integers, divide each by 3, round the result down to "
            "the nearest integer, and subtract 2. Return the sum of all of the new integers in "
            "the vector."
        ),
        source=f"{PSB2} (problem Fuel Cost); {PSB2_IMPL.format('fuel_cost')}.",
        adaptation=(
            "a task takes at most 8 i64 params and no vectors, so the vector (1 to 20 "
            "elements in the suite) is 1 to 8 elements, passed in params 1..8 with the unused "
            "params set to 0. A 0 means \"no element\" and adds nothing (every element is at "
            "least 6, so 0 is never an element). The suite's long edge vectors (20 copies of "
            "6, 7, 8, 9, 10, 11, 12, 13, 9998, 9999 or 10000, and 15 copies of 9) become 8 "
            "copies and 7 copies of 9; its random vectors of length 6 to 20 are of length 6 to "
            "8 here. The error is the absolute difference, as in the suite."
        ),
        ranges=(
            "elements in [6, 10,000] (the range of the suite's reference implementation); "
            "vector length in [1, 8]."
        ),
        cases_note=(
            "training: the suite's 15 one-element and 10 two-element edge vectors, its 12 long "
            "edge vectors shortened as above, 75 random vectors of length 1 to 5 and 88 of "
            "length 6 to 8; held-out: 1,000 random vectors of length 1 to 5 and 1,000 of "
            "length 6 to 8, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=None,
        loop_desc="one division and subtraction per param",
        reference={
            "source": PSB2_RESULTS,
            "note": (
                "adapted problem (at most 8 elements in fixed params instead of a vector of up "
                "to 20): no published figure. For the suite's vector problem the PSB2 table "
                "gives 50 PushGP successes (lexicase); that figure does not apply to this task."
            ),
        },
    )


# --------------------------------------------------------------------------- PSB1


def collatz_numbers():
    def solve(n):
        terms = 1
        while n > 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            terms += 1
        return terms

    def iters(n):
        return solve(n) - 1

    # the suite's note on its edge cases: the largest answers in range
    assert [solve(n) for n in (6171, 6943, 7963, 9257)] == [262, 257, 252, 260]
    rng = random.Random(1101)
    edge = [(n,) for n in list(range(1, 11)) + [9999, 10000, 6171, 6943, 7963, 9257]]
    seen = set(edge)

    def draw():
        return (rng.randint(11, 9998),)

    train = edge + fresh(draw, 184, seen)
    test = fresh(draw, 2000, seen)
    return Task(
        name="collatz_numbers",
        params=1,
        error="abs",
        statement=(
            "Given an integer in the range [1, 10000], find the number of terms in the Collatz "
            "sequence starting from that integer (n -> n/2 when n is even, 3n+1 when odd, "
            "until 1; the count includes n and the final 1, so 1 -> 1, 2 -> 2, 3 -> 8)."
        ),
        source=f"{PSB1} (problem Collatz Numbers); {PSB1_IMPL.format('collatz_numbers', 'collatz-numbers')}.",
        adaptation="None: one integer in, one integer out, as in the suite. The error is the absolute difference, as in the suite.",
        ranges="n in [1, 10,000] (random inputs in [11, 9,998], as in the suite).",
        cases_note=(
            "training: the suite's 16 edge cases (1 to 10, 9999, 10000, and 6171, 6943, 7963, "
            "9257, the inputs with the largest answers) and 184 random inputs; held-out: 2,000 "
            "random inputs, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=iters,
        loop_desc="a loop of one Collatz step per iteration",
        reference={"source": PSB1, "note": PSB1_NOT_FOUND + "."},
    )


def sum_of_squares():
    def solve(n):
        return sum(i * i for i in range(1, n + 1))

    def iters(n):
        return n

    rng = random.Random(1102)
    edge = [(n,) for n in range(1, 6)] + [(100,)]
    seen = set(edge)

    def draw():
        return (rng.randint(6, 99),)

    train = edge + fresh(draw, 44, seen)
    test = [(n,) for n in range(1, 101)]
    return Task(
        name="sum_of_squares",
        params=1,
        error="abs",
        statement=(
            "Given integer 0 < n <= 100, return the sum of squaring each positive integer "
            "between 1 and n inclusive."
        ),
        source=f"{PSB1} (problem Sum of Squares); {PSB1_IMPL.format('sum_of_squares', 'sum-of-squares')}.",
        adaptation="None: one integer in, one integer out, as in the suite. The error is the absolute difference, as in the suite.",
        ranges="n in [1, 100].",
        cases_note=(
            "training: the suite's 6 edge cases (1 to 5, and 100) and 44 random inputs from "
            "[6, 99], the 50 cases of the suite's typical use; held-out: all 100 inputs in "
            "[1, 100], as in the suite. The input space has only 100 values, so the held-out "
            "set is exhaustive (it cannot reach 1,000 cases) and includes the training inputs."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=iters,
        loop_desc="a loop of one square and add per integer up to n",
        reference={"source": PSB1, "note": PSB1_NOT_FOUND + "."},
        exhaustive=True,
    )


def median():
    def solve(a, b, c):
        return sorted((a, b, c))[1]

    rng = random.Random(1103)

    def r():
        return rng.randint(-100, 100)

    def random3():
        return (r(), r(), r())

    def two_same():
        v = [r()] * 2 + [r()]
        rng.shuffle(v)
        return v

    def all_same():
        return (r(),) * 3

    seen = set()
    train = fresh(random3, 60, seen) + fresh(two_same, 30, seen) + fresh(all_same, 10, seen)
    test = fresh(random3, 600, seen) + fresh(two_same, 300, seen) + fresh(all_same, 100, seen)
    return Task(
        name="median",
        params=3,
        error="exact",
        statement="Given 3 integers, print their median.",
        source=f"{PSB1} (problem Median, from IntroClass); {PSB1_IMPL.format('median', 'median')}.",
        adaptation=(
            "the suite's program prints the median; here it returns it. A case is right or "
            "wrong (exact), as in the suite, which compares the printed string."
        ),
        ranges="each integer in [-100, 100].",
        cases_note=(
            "the suite has no edge cases. Training: 60 random triples, 30 with two of the "
            "three equal, 10 with all three equal (the suite's typical use); held-out: 600, "
            "300 and 100 of the same kinds, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=None,
        loop_desc="a few comparisons",
        reference={"source": PSB1, "note": PSB1_NOT_FOUND + "."},
    )


def smallest():
    def solve(a, b, c, d):
        return min(a, b, c, d)

    rng = random.Random(1104)

    def r():
        return rng.randint(-100, 100)

    def three_same():
        v = [r()] * 3 + [r()]
        rng.shuffle(v)
        return v

    def all_same():
        return (r(),) * 4

    def small4():
        return tuple(rng.randint(0, 100) for _ in range(4))

    def random4():
        return (r(), r(), r(), r())

    edge = [(0, 0, 0, 0), (-44, -44, -7, -13), (0, 4, -99, -33), (-22, -22, -22, -22), (99, 100, 99, 100)]
    seen = set(edge)
    train = (edge + fresh(three_same, 10, seen) + fresh(all_same, 5, seen)
             + fresh(small4, 20, seen) + fresh(random4, 60, seen))
    test = (fresh(three_same, 100, seen) + fresh(all_same, 100, seen)
            + fresh(small4, 200, seen) + fresh(random4, 600, seen))
    return Task(
        name="smallest",
        params=4,
        error="exact",
        statement="Given 4 integers, print the smallest of them.",
        source=f"{PSB1} (problem Smallest, from IntroClass); {PSB1_IMPL.format('smallest', 'smallest')}.",
        adaptation=(
            "the suite's program prints the smallest; here it returns it. A case is right or "
            "wrong (exact), as in the suite, which compares the printed string."
        ),
        ranges="each integer in [-100, 100].",
        cases_note=(
            "training: the suite's 5 edge cases, (0, 0, 0, 0), (-44, -44, -7, -13), "
            "(0, 4, -99, -33), (-22, -22, -22, -22), (99, 100, 99, 100), then 10 inputs with 3 "
            "of the 4 equal, 5 with all 4 equal, 20 with all in [0, 100], 60 random; held-out: "
            "100, 100, 200 and 600 of those kinds, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=None,
        loop_desc="three comparisons",
        reference={"source": PSB1, "note": PSB1_NOT_FOUND + "."},
    )


def grade():
    letters = "ABCDF"

    def solve(a, b, c, d, score):
        for code, threshold in enumerate((a, b, c, d)):
            if score >= threshold:
                return code
        return letters.index("F")

    rng = random.Random(1105)
    repair = [(80, 70, 60, 50, s) for s in (85, 80, 79, 75, 70, 69, 65, 60, 59, 55, 50, 49, 45)]
    hand = [(90, 80, 70, 60, 100), (90, 80, 70, 60, 0)]
    hand += [(4, 3, 2, 1, s) for s in (5, 4, 3, 2, 1, 0)]
    hand += [(100, 99, 98, 97, s) for s in (100, 99, 98, 97, 96)]
    hand += [(98, 48, 27, 3, s) for s in (55, 14, 1)]
    hand += [(45, 30, 27, 0, s) for s in (1, 0)]
    hand += [(48, 46, 44, 42, s) for s in range(40, 50)]
    edge = repair + hand
    assert len(edge) == 41
    seen = set(edge)

    def draw():
        while True:
            t = sorted((rng.randint(0, 100) for _ in range(4)), reverse=True)
            if len(set(t)) == 4:
                return tuple(t) + (rng.randint(0, 100),)

    train = edge + fresh(draw, 159, seen)
    test = fresh(draw, 2000, seen)
    return Task(
        name="grade",
        params=5,
        error="abs",
        statement=(
            "Given 5 integers, all in range [0, 100]: the first four represent the lower "
            "numeric thresholds for achieving an A, B, C, and D, and will be distinct and in "
            "descending order; the fifth represents the student's numeric grade. The program "
            'must output "Student has a X grade.", where X is A, B, C, D, or F depending on the '
            "thresholds and the numeric grade."
        ),
        source=f"{PSB1} (problem Grade, from IntroClass); {PSB1_IMPL.format('grade', 'grade')}.",
        adaptation=(
            "the output string is encoded as the code of its letter: A = 0, B = 1, C = 2, "
            "D = 3, F = 4. The suite scores the Levenshtein distance of the string and the "
            "distance between the printed and the correct letter; here the error is the "
            "absolute difference of the codes, which stands for the latter."
        ),
        ranges="every input in [0, 100]; the four thresholds distinct and descending.",
        cases_note=(
            "training: the suite's 41 edge cases (13 from the IntroClass repair benchmark, "
            "thresholds 80/70/60/50, and 28 written by hand) and 159 random inputs; "
            "held-out: 2,000 random inputs, none of them a training input."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=None,
        loop_desc="four comparisons",
        reference={"source": PSB1, "note": "adapted output (letter code instead of a string): " + PSB1_NOT_FOUND + "."},
    )


def small_or_large():
    def solve(n):
        if n < 1000:
            return -1
        if n >= 2000:
            return 1
        return 0

    rng = random.Random(1106)
    special = [-10000, 0, 980] + list(range(995, 1005)) + [1020, 1980] + list(range(1995, 2005)) + [2020, 10000]
    generality = list(range(980, 1020)) + list(range(1980, 2020))
    assert len(special) == 27 and len(generality) == 80
    both = sorted(set(special) & set(generality))
    edge = {(n,) for n in special + generality}
    pool = [(n,) for n in range(-10000, 10001) if (n,) not in edge]
    seen = set()

    def draw():
        return pool[rng.randrange(len(pool))]

    train = [(n,) for n in special] + fresh(draw, 73, seen)
    test = [(n,) for n in generality] + fresh(draw, 920, seen)
    return Task(
        name="small_or_large",
        params=1,
        error="exact",
        statement=(
            'For a given integer n, print "small" if n < 1000 and "large" if n >= 2000 (and '
            "nothing if 1000 <= n < 2000)."
        ),
        source=f"{PSB1} (problem Small or Large); {PSB1_IMPL.format('small_or_large', 'small-or-large')}.",
        adaptation=(
            'the printed string is encoded as an integer: -1 for "small", 1 for "large", 0 '
            "for nothing. The suite scores the Levenshtein distance between strings; here a "
            "case is right or wrong (exact)."
        ),
        ranges="n in [-10,000, 10,000].",
        cases_note=(
            "training: the suite's 27 special inputs (-10000, 0, 980, 995 to 1004, 1020, 1980, "
            "1995 to 2004, 2020, 10000) and 73 random inputs; held-out: the suite's 80 "
            "generality inputs (980 to 1019 and 1980 to 2019) and 920 random inputs. The "
            f"random inputs avoid all edge inputs and each other; {len(both)} of the 80 "
            "generality inputs are also special training inputs, as in the suite."
        ),
        train=train,
        test=test,
        solve=solve,
        loop_iters=None,
        loop_desc="two comparisons",
        reference={"source": PSB1, "note": "adapted output (integer code instead of a string): " + PSB1_NOT_FOUND + "."},
    )


# --------------------------------------------------------------------------- classic GP


def bits(width):
    """Every input of `width` bits, in counting order (param 1 is the high bit)."""
    return [tuple((i >> (width - 1 - k)) & 1 for k in range(width)) for i in range(2**width)]


def even_parity(k):
    def solve(*xs):
        return 1 if sum(xs) % 2 == 0 else 0

    cases = bits(k)
    scale = (
        "even-5-parity"
        if k == 5
        else "a larger member of the family than even-5-parity, with 256 inputs in place of 32"
    )
    return Task(
        name=f"even_{k}_parity",
        params=k,
        error="exact",
        statement=(
            f"Boolean even-{k}-parity: given {k} bits, return 1 if an even number of them are "
            "1, else 0."
        ),
        source=f"{KOZA} (the Boolean even-parity family).",
        adaptation=(
            f"each Boolean input is an i64 param holding 0 or 1, and the output is 0 or 1; "
            f"{k} inputs: {scale}. As in Koza's runs, the error counts mismatches (exact)."
        ),
        ranges=f"each of the {k} inputs is 0 or 1.",
        cases_note=(
            f"training: all {2**k} inputs, as in Koza's fitness. The input space has only "
            f"{2**k} values, so the held-out set is exhaustive: it is the same {2**k} inputs "
            "(the test error equals the training error)."
        ),
        train=cases,
        test=cases,
        solve=solve,
        loop_iters=None,
        loop_desc=f"{k - 1} XORs and a negation",
        reference={"source": KOZA, "note": "classic GP problem: no published PushGP figure in PSB1 or PSB2."},
        exhaustive=True,
    )


def multiplexer_6():
    def solve(a0, a1, d0, d1, d2, d3):
        return (d0, d1, d2, d3)[a0 + 2 * a1]

    order = bits(6)
    return Task(
        name="multiplexer_6",
        params=6,
        error="exact",
        statement=(
            "Boolean 6-multiplexer: given 2 address bits a0, a1 and 4 data bits d0..d3 (params "
            "in that order), return the data bit the address selects, d[a0 + 2*a1]."
        ),
        source=f"{KOZA} (the Boolean multiplexer family).",
        adaptation=(
            "each Boolean input is an i64 param holding 0 or 1, and the output is 0 or 1. The "
            "11-multiplexer Koza also treats needs 11 inputs, more than the 8 params a task "
            "may have, so this is the 6-multiplexer. As in Koza's runs, the error counts "
            "mismatches (exact)."
        ),
        ranges="each of the 6 inputs is 0 or 1.",
        cases_note=(
            "training: all 64 inputs, as in Koza's fitness. The input space has only 64 values, "
            "so the held-out set is exhaustive: it is the same 64 inputs (the test error "
            "equals the training error)."
        ),
        train=order,
        test=order,
        solve=solve,
        loop_iters=None,
        loop_desc="a two-level choice",
        reference={"source": KOZA, "note": "classic GP problem: no published PushGP figure in PSB1 or PSB2."},
        exhaustive=True,
    )


PROBLEMS = [
    gcd,
    fizz_buzz,
    coin_sums,
    square_digits,
    fuel_cost,
    collatz_numbers,
    sum_of_squares,
    median,
    smallest,
    grade,
    small_or_large,
    lambda: even_parity(5),
    lambda: even_parity(8),
    multiplexer_6,
]


# --------------------------------------------------------------------------- output


def fuel_for(t):
    """fuel_per_case and the comment lines that say why."""
    if t.loop_iters is None:
        fuel = FUEL_FLOOR
        why = (
            f"a straightforward solution ({t.loop_desc}) has no loop and spends well under "
            f"1,000. The budget is the engine's default, {FUEL_FLOOR:,}: a genome without "
            f"loops or calls runs each instruction at most once, so under the default "
            f"policy's {MODULE_CAP:,}-byte module cap it can never run out, while a runaway "
            "loop is cut off after the same budget as in the other shipped tasks."
        )
        return fuel, why
    worst = max(t.loop_iters(*a) for a in t.train + t.test)
    need = FUEL_MARGIN * (FUEL_PER_ITERATION * worst + FUEL_OVERHEAD)
    rounded = -(-need // 1000) * 1000
    fuel = max(FUEL_FLOOR, rounded)
    assert fuel <= MAX_FUEL, (t.name, fuel)
    why = (
        f"a straightforward solution ({t.loop_desc}) runs at most {worst} iterations on "
        f"these cases; at about {FUEL_PER_ITERATION} fuel per iteration plus about "
        f"{FUEL_OVERHEAD} for the rest, with a margin of {FUEL_MARGIN}x, that is "
        f"{need:,}"
    )
    if fuel == FUEL_FLOOR and rounded < FUEL_FLOOR:
        why += (
            f", raised to the engine's default of {FUEL_FLOOR:,} (so that a genome without "
            f"loops can never run out under the default policy's {MODULE_CAP:,}-byte module "
            "cap)."
        )
    else:
        why += f", rounded up to {fuel:,}."
    return fuel, why


def comment(label, text, width=92):
    lines = textwrap.wrap(
        f"{label}: {text}" if label else text,
        width=width - 2,
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [f"# {line}" for line in lines]


def case_lines(t, cases):
    out = []
    for args in cases:
        expect = t.solve(*args)
        out.append(f"  {{ args = [{', '.join(str(a) for a in args)}], expect = {expect} }},")
    return out


def validate(t):
    assert 1 <= t.params <= 8, t.name
    assert t.error in ("abs", "squared", "exact"), t.name
    # 100 to 200 training cases as in the suites; an exhaustive Boolean task trains on
    # its whole input space, as in Koza's runs (even-8-parity: 256)
    assert 1 <= len(t.train) <= (256 if t.exhaustive else 200), (t.name, len(t.train))
    assert len(t.test) >= 1000 or t.exhaustive, (t.name, len(t.test))
    for args in t.train + t.test:
        assert len(args) == t.params, (t.name, args)
        for v in list(args) + [t.solve(*args)]:
            assert isinstance(v, int) and not isinstance(v, bool), (t.name, args, v)
            assert I64_MIN <= v <= I64_MAX, (t.name, args, v)
    assert len(set(t.train)) == len(t.train), t.name
    assert len(set(t.test)) == len(t.test), t.name
    if not t.exhaustive:
        overlap = set(t.train) & set(t.test)
        if t.name == "small_or_large":
            # the suite's generality inputs overlap its special training inputs
            assert all(980 <= a[0] < 1020 or 1980 <= a[0] < 2020 for a in overlap)
        else:
            assert not overlap, (t.name, sorted(overlap)[:5])


def render_task(t):
    validate(t)
    fuel, why = fuel_for(t)
    lines = []
    lines += comment("Problem", t.statement)
    lines += comment("Source", t.source)
    lines += comment("Adaptation", t.adaptation)
    lines += comment("Inputs", t.ranges)
    lines += comment("Cases", t.cases_note)
    lines += comment("Fuel", why)
    lines.append("# generated by scripts/gen_tasks.py; do not edit by hand")
    lines.append(f'name = "{t.name}"')
    lines.append("params = [" + ", ".join(['"i64"'] * t.params) + "]")
    lines.append('result = "i64"')
    lines.append(f'error = "{t.error}"')
    lines.append("success_threshold = 0.0")
    lines.append(f"fuel_per_case = {fuel}")
    lines.append("cases = [")
    lines += case_lines(t, t.train)
    lines.append("]")
    lines.append("test_cases = [")
    lines += case_lines(t, t.test)
    lines.append("]")
    return "\n".join(lines) + "\n"


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_reference(tasks):
    lines = [
        "# PushGP's published results on the problems behind the tasks in fixtures/tasks/,",
        "# one table per task name. pushgp_successes is given only where a figure was found",
        "# in a source that can be named and the task is that problem (up to a lossless",
        "# encoding of its output); otherwise note says why there is none.",
        "# Kept out of fixtures/tasks/, where every .toml is loaded as a task.",
        "# generated by scripts/gen_tasks.py; do not edit by hand",
    ]
    for t in tasks:
        ref = t.reference
        lines.append("")
        lines.append(f"[{t.name}]")
        if "pushgp_successes" in ref:
            lines.append(f"pushgp_successes = {ref['pushgp_successes']}")
        if "pushgp_runs" in ref:
            lines.append(f"pushgp_runs = {ref['pushgp_runs']}")
        if "selection" in ref:
            lines.append(f"selection = {toml_string(ref['selection'])}")
        lines.append(f"source = {toml_string(ref['source'])}")
        lines.append(f"note = {toml_string(ref['note'])}")
    return "\n".join(lines) + "\n"


def generate():
    """Every file this script owns: {path relative to the repository: text}."""
    tasks = [make() for make in PROBLEMS]
    names = [t.name for t in tasks]
    assert len(set(names)) == len(names), names
    files = {os.path.join(TASK_DIR, f"{t.name}.toml"): render_task(t) for t in tasks}
    files[REFERENCE_FILE] = render_reference(tasks)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file on disk differs from what the script makes")
    args = ap.parse_args()
    files = generate()
    if args.check:
        stale = []
        for rel, text in sorted(files.items()):
            path = os.path.join(ROOT, rel)
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                stale.append(rel)
        for rel in stale:
            print(f"differs from scripts/gen_tasks.py's output: {rel}", file=sys.stderr)
        if stale:
            print("run: python3 scripts/gen_tasks.py", file=sys.stderr)
            sys.exit(1)
        print(f"{len(files)} files match scripts/gen_tasks.py")
        return
    for rel, text in sorted(files.items()):
        path = os.path.join(ROOT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        print(f"wrote {rel}")


if __name__ == "__main__":
    main()
