//! Native timing of parse + plan for one file: `cargo run --release --bin time_parse -- FILE [RUNS]`.
//! The figure to compare with the in-sandbox time of `plugins/dockerfile/bench.sh`.

use lade_dockerfile::model::{NoImages, Platform, Request};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let source = std::fs::read_to_string(&args[1]).expect("reading the file");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let p = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let req = Request {
        source,
        file_name: "Containerfile".into(),
        build_args: vec![],
        target_platform: p.clone(),
        build_platform: p,
        target: None,
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = lade_dockerfile::parse(&req, &NoImages).expect("the file parses");
        times.push(t.elapsed());
        std::hint::black_box(out);
    }
    times.sort();
    println!("median {:?} over {runs} runs", times[runs / 2]);
}
