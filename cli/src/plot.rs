//! The error plot of an evolution (`tdev evolve` writes it next to `--out` and to the
//! store): best and median train error per generation on a log scale, with labelled
//! axes, ticks and a legend. Hand-written SVG: two polylines, their axes and text,
//! where a plotting crate would bring a renderer and fonts.

use engine::evolve::GenerationStats;
use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;

/// A value of the log axis as a label: plain from 0.001 to 10000, else `1e<k>`.
fn decade_label(k: i32) -> String {
    if (-3..=4).contains(&k) {
        let v = 10f64.powi(k);
        if k < 0 {
            format!("{v:.*}", (-k) as usize)
        } else {
            format!("{v:.0}")
        }
    } else {
        format!("1e{k}")
    }
}

/// A step of 1, 2 or 5 × 10^k that cuts `span` into at most `most` parts.
fn nice_step(span: f64, most: f64) -> f64 {
    let raw = (span / most).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// A line of the plot: its name, its colour and its (generation, error) points.
type Line = (&'static str, &'static str, Vec<(u32, f64)>);

/// The errors a generation is drawn with: its best, and its median (its mean in a log
/// written before the median was kept). Errors of 1e29 and more stand for failed
/// individuals and are not drawn.
fn series(logs: &[GenerationStats]) -> [Line; 2] {
    let usable = |v: f64| v.is_finite() && (0.0..1e29).contains(&v);
    let pick = |f: fn(&GenerationStats) -> f64| -> Vec<(u32, f64)> {
        logs.iter()
            .map(|s| (s.generation, f(s)))
            .filter(|(_, v)| usable(*v))
            .collect()
    };
    [
        (
            "median",
            "#d33",
            pick(|s| s.median_error.unwrap_or(s.mean_error)),
        ),
        ("best", "#23d", pick(|s| s.best_error)),
    ]
}

/// The SVG of `logs` (one per generation, in order).
pub fn svg(logs: &[GenerationStats]) -> String {
    let lines = series(logs);
    let values: Vec<f64> = lines
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, v)| *v))
        .collect();
    let positive = values.iter().copied().filter(|v| *v > 0.0);
    let (min_pos, max) = positive.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let zeros = values.contains(&0.0);
    // Decades of the axis; a zero is drawn on its bottom line, a decade below the rest.
    let (mut lo, mut hi) = if min_pos.is_finite() {
        (min_pos.log10().floor() as i32, max.log10().ceil() as i32)
    } else {
        (-1, 1)
    };
    if zeros {
        lo -= 1;
    }
    if hi <= lo {
        hi = lo + 1;
    }
    let last = logs.iter().map(|s| s.generation).max().unwrap_or(0).max(1);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |g: u32| LEFT + pw * f64::from(g) / f64::from(last);
    let y = |v: f64| {
        let l = if v > 0.0 { v.log10() } else { f64::from(lo) };
        TOP + ph * (1.0 - (l - f64::from(lo)) / f64::from(hi - lo))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="24" font-size="14">Train error per generation</text>"##
    );
    // y ticks: every decade (every few when there are many), with a grid line
    let every = ((hi - lo) as f64 / 8.0).ceil().max(1.0) as i32;
    let mut k = lo;
    while k <= hi {
        let yy = y(10f64.powi(k));
        let label = if zeros && k == lo {
            "0".to_string()
        } else {
            decade_label(k)
        };
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="ytick">{label}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
        k += every;
    }
    // x ticks
    let step = nice_step(f64::from(last), 10.0) as u32;
    let mut g = 0;
    while g <= last {
        let xx = x(g);
        let _ = writeln!(
            out,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle" class="xtick">{g}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0
        );
        g += step.max(1);
    }
    let _ = writeln!(
        out,
        r##"<path d="M{LEFT} {TOP} V{:.1} H{:.1}" stroke="black" fill="none"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">generation</text>
<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">train error (log scale)</text>"##,
        H - BOTTOM,
        W - RIGHT,
        LEFT + pw / 2.0,
        H - 12.0,
        TOP + ph / 2.0
    );
    for (i, (name, color, points)) in lines.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|(g, v)| format!("{:.1},{:.1}", x(*g), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline class="{name}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>
<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{name}</text>"##,
            pts.join(" "),
            W - RIGHT - 110.0,
            20.0 + 14.0 * i as f64,
            W - RIGHT - 86.0,
            20.0 + 14.0 * i as f64,
            W - RIGHT - 80.0,
            24.0 + 14.0 * i as f64,
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(generation: u32, best: f64, median: Option<f64>, mean: f64) -> GenerationStats {
        GenerationStats {
            generation,
            best_error: best,
            mean_error: mean,
            median_error: median,
            best_id: engine::AgentId::of(b""),
            best_size: 0,
            evaluations: 0,
            produced: 0,
            valid: 0,
            culled: Default::default(),
            mean_size: 0.0,
            quarantine_withheld: Default::default(),
            quarantined: 0,
            proposals: None,
        }
    }

    #[test]
    fn axes_have_labelled_ticks_and_the_median_is_drawn() {
        let logs: Vec<GenerationStats> = (0..=20)
            .map(|g| {
                log(
                    g,
                    100.0 / f64::from(g + 1),
                    Some(1000.0 / f64::from(g + 1)),
                    1e26,
                )
            })
            .collect();
        let svg = svg(&logs);
        // decades from 1 (best 100/21 ≈ 4.8 rounds down to 1) to 1000
        for label in ["1", "10", "100", "1000"] {
            assert!(
                svg.contains(&format!(r#"class="ytick">{label}</text>"#)),
                "{label}: {svg}"
            );
        }
        // generations 0, 2, …, 20
        for g in (0..=20).step_by(2) {
            assert!(svg.contains(&format!(r#"class="xtick">{g}</text>"#)), "{g}");
        }
        assert!(
            svg.contains(">generation</text>") && svg.contains(">train error (log scale)</text>")
        );
        // both lines have a point per generation; the mean's 1e26 is nowhere
        for class in ["best", "median"] {
            let line = svg
                .lines()
                .find(|l| l.contains(&format!(r#"<polyline class="{class}""#)))
                .expect("line");
            let points = line.split("points=\"").nth(1).expect("points");
            assert_eq!(points.split(' ').count(), 21, "{class}");
        }
        assert!(!svg.contains("1e26"));
    }

    #[test]
    fn zero_errors_sit_on_a_zero_line_and_old_logs_use_the_mean() {
        let logs = vec![log(0, 5.0, None, 50.0), log(1, 0.0, None, 20.0)];
        let svg = svg(&logs);
        assert!(svg.contains(r#"class="ytick">0</text>"#), "{svg}");
        assert!(svg.contains(r#"class="ytick">100</text>"#), "{svg}");
        assert!(svg.contains(r#"<polyline class="median""#));
        // an empty evolution still gives a drawing
        assert!(super::svg(&[]).contains("</svg>"));
    }
}
