//! Word count: writes "LINES WORDS BYTES\n" for its input, like `wc`.
#![no_std]

fn push_num(out: &mut [u8], at: &mut usize, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out[*at] = *d;
        *at += 1;
    }
}

agent_sdk::act! {
    fn() -> i32 {
        let (mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64);
        let mut in_word = false;
        let mut buf = [0u8; 4096];
        loop {
            let n = agent_sdk::read_input(&mut buf);
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                bytes += 1;
                if b == b'\n' {
                    lines += 1;
                }
                let space = matches!(b, b' ' | b'\n' | b'\t' | b'\r' | 0x0b | 0x0c);
                if !space && !in_word {
                    words += 1;
                }
                in_word = !space;
            }
        }
        let mut out = [0u8; 64];
        let mut at = 0;
        push_num(&mut out, &mut at, lines);
        out[at] = b' ';
        at += 1;
        push_num(&mut out, &mut at, words);
        out[at] = b' ';
        at += 1;
        push_num(&mut out, &mut at, bytes);
        out[at] = b'\n';
        agent_sdk::write(&out[..at + 1]);
        0
    }
}

#[cfg(test)]
mod tests {
    use super::act;
    #[test]
    fn counts() {
        agent_sdk::testing::reset(b"one two\nthree\n\n  four");
        assert_eq!(act(), 0);
        assert_eq!(agent_sdk::testing::output(), b"3 4 21\n");
    }
}
