//! Typed form: the greatest common divisor of two i64 (never negative; gcd(0, 0) = 0;
//! i64::MIN wraps as `unsigned_abs` does not fit, so its gcd with 0 is reported as
//! i64::MIN).
#![no_std]

agent_sdk::act! {
    fn(a: i64, b: i64) -> i64 {
        let (mut x, mut y) = (a.unsigned_abs(), b.unsigned_abs());
        while y != 0 {
            let t = x % y;
            x = y;
            y = t;
        }
        x as i64
    }
}
