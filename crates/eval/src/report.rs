//! The HTML report: one self-contained page (inline SVG plots and data-URL thumbnails).

use std::fmt::Write;

use vigil_detect::EventKind;

use crate::labels::Label;
use crate::run::{short, ClipResult, EvalReport, SetResult, Thumb};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Renders `r` as an HTML page.
pub fn html(r: &EvalReport) -> String {
    let mut h = String::new();
    let (w, f, c) = r.thresholds;
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>vigil eval</title><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .thumbs{{display:flex;flex-wrap:wrap;gap:.5em}}.thumbs figure{{margin:0;font-size:.8em;max-width:200px}}\
         svg{{background:#fafafa;border:1px solid #ddd}}</style></head><body>\
         <h1>vigil eval</h1><p>model <code>{}</code>; judge sensitivity <b>{:?}</b>: warning {w:.2}, failure {f:.2}, \
         clear {c:.2}; per-frame operating point {:.2}; recall at FPR &le; {:.0}&nbsp;%.</p>",
        esc(&r.model),
        r.judge.sensitivity,
        r.operating_threshold,
        r.max_fpr * 100.0
    );
    h.push_str("<h2>Per frame</h2><table><tr><th>set</th><th>n (failure/normal)</th><th>AUROC</th><th>precision</th><th>recall</th><th>FPR</th><th>recall @FPR budget</th><th>mean score</th></tr>");
    for s in std::iter::once(&r.overall).chain(&r.sets) {
        set_row(&mut h, s);
    }
    h.push_str("</table>");
    for reason in &r.skipped {
        let _ = write!(h, "<p>{}</p>", esc(reason));
    }
    if !r.clips.is_empty() {
        let s = &r.footage;
        let _ = write!(
            h,
            "<h2>Footage</h2><p>{} clip(s); {:.3} h of normal footage: {} false <code>failure</code> event(s) \
             ({} per hour), {} false <code>warning</code> event(s) ({} per hour). Failure clips: {}, detected {}; \
             onset to <code>failure</code>: mean {} s, max {} s.</p>",
            s.clips,
            s.normal_hours,
            s.false_failures,
            opt(s.false_failures_per_hour, 2),
            s.false_warnings,
            opt(s.false_warnings_per_hour, 2),
            s.failure_clips,
            s.detected_clips,
            opt(s.mean_onset_to_failure_s, 1),
            opt(s.max_onset_to_failure_s, 1),
        );
        h.push_str("<table><tr><th>clip</th><th>frames</th><th>events</th><th>false failures</th><th>false warnings</th><th>onset frame</th><th>onset to failure</th></tr>");
        for c in &r.clips {
            let kinds: Vec<String> = c
                .events
                .iter()
                .map(|e| format!("{} @{}", if e.kind == EventKind::Failure { "F" } else { "W" }, e.frame))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&short(&c.path)),
                c.frames,
                esc(&kinds.join(", ")),
                c.false_failures,
                c.false_warnings,
                c.onset_frame.map_or("–".into(), |f| f.to_string()),
                match (c.onset_frame, c.onset_to_failure_s, c.onset_to_failure_frames) {
                    (None, ..) => "–".into(),
                    (Some(_), Some(s), Some(n)) => format!("{s:.1} s ({n} frames)"),
                    _ => "missed".into(),
                }
            );
        }
        h.push_str("</table>");
        for c in &r.clips {
            plot(&mut h, c, r.thresholds);
        }
    }
    thumbs(&mut h, "Worst false positives (normal, highest scores)", &r.worst_false_positives);
    thumbs(&mut h, "Worst misses (failure, lowest scores)", &r.worst_misses);
    h.push_str("</body></html>\n");
    h
}

fn set_row(h: &mut String, s: &SetResult) {
    let o = &s.operating;
    let _ = write!(
        h,
        "<tr><td>{}</td><td>{} ({}/{})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&short(&s.name)),
        s.n,
        s.n_failure,
        s.n_normal,
        opt(s.auroc, 3),
        opt(o.precision, 3),
        opt(o.recall, 3),
        opt(o.fpr, 3),
        opt(s.recall_at_max_fpr, 3),
        opt(s.mean_score, 3),
    );
}

/// Score over media time, thresholds dashed, failure-labelled frames shaded, events as vertical lines.
fn plot(h: &mut String, c: &ClipResult, (warn, fail, _): (f32, f32, f32)) {
    const W: f64 = 900.0;
    const H: f64 = 180.0;
    const L: f64 = 40.0;
    const B: f64 = 20.0;
    let t0 = c.scores.first().map_or(0.0, |s| s.t);
    let t1 = c.scores.last().map_or(1.0, |s| s.t).max(t0 + 1e-6);
    let x = |t: f64| L + (t - t0) / (t1 - t0) * (W - L - 10.0);
    let y = |s: f64| 10.0 + (1.0 - s) * (H - B - 10.0);
    let _ = write!(
        h,
        "<h3>{}</h3><svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(&short(&c.path))
    );
    // Failure-labelled frames.
    let dt = if c.scores.len() > 1 { (t1 - t0) / (c.scores.len() - 1) as f64 } else { 1.0 };
    for s in c.scores.iter().filter(|s| s.label == Some(Label::Failure)) {
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"10\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#fdd\"/>",
            x(s.t - dt / 2.0).max(L),
            (x(s.t + dt / 2.0) - x(s.t - dt / 2.0)).max(0.5),
            H - B - 10.0
        );
    }
    for (v, colour, name) in [(warn, "#e90", "warning"), (fail, "#c00", "failure")] {
        let _ = write!(
            h,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"9\" fill=\"{colour}\" text-anchor=\"end\">{name} {v:.2}</text>",
            W - 10.0,
            y(v as f64),
            y(v as f64),
            W - 12.0,
            y(v as f64) - 2.0
        );
    }
    let pts: Vec<String> =
        c.scores.iter().map(|s| format!("{:.1},{:.1}", x(s.t), y(s.score as f64))).collect();
    let _ = write!(
        h,
        "<polyline fill=\"none\" stroke=\"#246\" stroke-width=\"1\" points=\"{}\"/>",
        pts.join(" ")
    );
    for e in &c.events {
        let colour = if e.kind == EventKind::Failure { "#c00" } else { "#e90" };
        let _ = write!(
            h,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"10\" y2=\"{1:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{0:.1}\" y=\"9\" font-size=\"9\" fill=\"{colour}\">{2} @{3}</text>",
            x(e.t),
            H - B,
            if e.kind == EventKind::Failure { "failure" } else { "warning" },
            e.frame
        );
    }
    let _ = write!(
        h,
        "<line x1=\"{L}\" x2=\"{L}\" y1=\"10\" y2=\"{0}\" stroke=\"#888\"/><line x1=\"{L}\" x2=\"{1}\" y1=\"{0}\" y2=\"{0}\" stroke=\"#888\"/>\
         <text x=\"2\" y=\"14\" font-size=\"9\">1.0</text><text x=\"2\" y=\"{0}\" font-size=\"9\">0.0</text>\
         <text x=\"{L}\" y=\"{2}\" font-size=\"9\">{3:.1} s</text><text x=\"{1}\" y=\"{2}\" font-size=\"9\" text-anchor=\"end\">{4:.1} s</text></svg>",
        H - B,
        W - 10.0,
        H - 6.0,
        t0,
        t1
    );
}

fn thumbs(h: &mut String, title: &str, list: &[Thumb]) {
    let _ = write!(h, "<h2>{}</h2><div class=\"thumbs\">", esc(title));
    if list.is_empty() {
        h.push_str("<p>none</p>");
    }
    for t in list {
        let what = match t.frame {
            Some(f) => format!("{} frame {f}", short(&t.source)),
            None => short(&t.source),
        };
        let _ = write!(
            h,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{} ({:?}) score {:.3}</figcaption></figure>",
            t.data_url,
            esc(&what),
            esc(&what),
            t.label,
            t.score
        );
    }
    h.push_str("</div>");
}
