//! Mutation fuzzing of the Dockerfile frontend: parse + plan on inputs derived from a seed corpus by
//! byte flips, token insertion from a Dockerfile dictionary, line splices and truncation. Checks that
//! nothing panics, every location lies inside the input, results are deterministic, and each input finishes
//! quickly. A crashing input is written to `crashes/` and the run fails.
//!
//! Usage: `cargo run --release -- [SECONDS] [SEED]` (defaults: 60 s, seed 1).

use lade_dockerfile::model::{BaseImage, Images, Platform, Request, kv};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

const SEEDS: &[&str] = &[
    "FROM alpine\nRUN echo hi\n",
    "# syntax=docker/dockerfile:1\n# escape=`\nFROM mcr.microsoft.com/windows\nCOPY a c:\\\nRUN dir `\n  c:\\\n",
    "ARG V=1\nFROM --platform=$BUILDPLATFORM img:${V:-2} AS build\nARG TARGETARCH\nENV A=\"x y\" B=c\\ d\nRUN --mount=type=cache,target=/c,sharing=locked --network=none make\nFROM scratch\nCOPY --from=build --chown=1:1 --chmod=0755 --link /a /b\n",
    "FROM a\nRUN <<EOF\necho one\nEOF\nCOPY <<-'X' <<Y /d/\n\tx $V\n\tX\ny\nY\nRUN cat <<A <<B\na\nA\nb\nB\n",
    "FROM a\nENV p=/usr/local/bin/app.tar.gz\nENV q=${p##*/} r=${p%.*} s=${p/a/b} t=${p//a/b} u=${nope:-d} v=${p:+alt}\nWORKDIR ${p%%/*}\n",
    "FROM a\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=1s --retries=3 CMD [\"x\"]\nHEALTHCHECK NONE\nONBUILD RUN x\nEXPOSE 80 8000-8002/udp\nVOLUME [\"/a\"]\nUSER u\nSTOPSIGNAL 9\nSHELL [\"/bin/sh\", \"-c\"]\nLABEL a=b \"c d\"=e\nMAINTAINER me\nCMD x\nENTRYPOINT [\"y\"]\n",
    "FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nCOPY --from=one x y\n",
    "\u{feff}FROM a\r\nRUN a \\\r\n# c\r\n\r\n  b\r\n",
];

const TOKENS: &[&str] = &[
    "\\\n",
    "`\n",
    "\n",
    "\r\n",
    " ",
    "\t",
    "#",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=skip\n",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "?",
    "##",
    "%%",
    "#",
    "%",
    "/",
    "//",
    "*",
    "[",
    "]",
    "\"",
    "'",
    "\\",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "\nEOF\n",
    "\tEOF\n",
    "--mount=",
    "type=cache,",
    "target=/x",
    "from=0",
    "--from=",
    "--link",
    "--chmod=",
    "--platform=",
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "[\"a\"]",
    "AS x",
    "=",
    "scratch",
    "0",
    "99999999999",
    "é",
    "\u{0}",
    "\u{feff}",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A resolver that hands back ONBUILD triggers and ENV built from the fuzz input, to reach that code too.
struct FuzzImages(Vec<String>);

impl Images for FuzzImages {
    fn resolve(&self, _: &str, _: &Platform) -> Result<Option<BaseImage>, String> {
        Ok(Some(BaseImage {
            reference: "x".into(),
            env: vec!["PATH=/bin".into(), "HOME=/root".into()],
            on_build: self.0.clone(),
            shell: vec![],
        }))
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(8) {
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let i = rng.below(data.len() + 1);
                data.splice(i..i, t.iter().copied());
            }
            2 if !data.is_empty() => {
                let i = rng.below(data.len());
                let n = rng.below(16).min(data.len() - i);
                data.drain(i..i + n);
            }
            3 => {
                // Splice a piece of another corpus entry.
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = a + rng.below(other.len() - a + 1);
                    let i = rng.below(data.len() + 1);
                    data.splice(i..i, other[a..b].iter().copied());
                }
            }
            4 if !data.is_empty() => data.truncate(rng.below(data.len())),
            5 if !data.is_empty() => {
                // Duplicate a region (repetition finds quadratic behaviour).
                let a = rng.below(data.len());
                let b = (a + rng.below(64)).min(data.len());
                let piece = data[a..b].to_vec();
                for _ in 0..rng.below(32) {
                    data.splice(a..a, piece.iter().copied());
                }
            }
            _ => {
                let i = rng.below(data.len() + 1);
                data.insert(i, rng.next() as u8);
            }
        }
    }
    data.truncate(64 << 10);
    data
}

fn check(input: &str, rng: &mut Rng) -> Result<(), String> {
    let lines = input.split('\n').count() as u32;
    let req = Request {
        source: input.to_string(),
        file_name: "Containerfile".into(),
        build_args: vec![kv("V", "1"), kv("HTTP_PROXY", "p")],
        target_platform: Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        },
        build_platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        target: if rng.below(4) == 0 {
            Some(["0", "x", "build", "99"][rng.below(4)].into())
        } else {
            None
        },
    };
    let triggers: Vec<String> = input
        .lines()
        .take(rng.below(3))
        .map(str::to_string)
        .collect();
    let images = FuzzImages(triggers);
    let started = Instant::now();
    let first = lade_dockerfile::parse(&req, &images);
    if started.elapsed() > Duration::from_secs(2) {
        return Err(format!("slow input: {:?}", started.elapsed()));
    }
    let second = lade_dockerfile::parse(&req, &images);
    if first != second {
        return Err("non-deterministic result".into());
    }
    let check_loc = |l: &lade_dockerfile::model::Location| -> Result<(), String> {
        if l.line == 0
            || l.line > lines
            || l.end_line < l.line
            || l.end_line > lines
            || l.column == 0
        {
            return Err(format!("location out of range: {l:?} for {lines} lines"));
        }
        Ok(())
    };
    match first {
        Ok(out) => {
            for r in &out.raw {
                check_loc(&r.location)?;
            }
            let n = out.plan.stages.len() as u32;
            if out.plan.target >= n || out.plan.required.iter().any(|&i| i >= n) {
                return Err("stage index out of range".into());
            }
            for s in &out.plan.stages {
                check_loc(&s.location)?;
                if s.depends_on.iter().any(|&d| d >= n || d == s.index) {
                    return Err(format!(
                        "bad depends-on {:?} in stage {}",
                        s.depends_on, s.index
                    ));
                }
            }
            // Every stage in `required` comes after what it depends on.
            for (pos, &i) in out.plan.required.iter().enumerate() {
                for d in &out.plan.stages[i as usize].depends_on {
                    if !out.plan.required[..pos].contains(d) {
                        return Err("required is not in dependency order".into());
                    }
                }
            }
        }
        Err(diags) => {
            if diags.is_empty() {
                return Err("failure without a diagnostic".into());
            }
            for d in &diags {
                if let Some(l) = &d.location {
                    check_loc(l)?;
                }
            }
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rng = Rng(seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut corpus: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    if let Ok(dir) = std::fs::read_dir("../../examples") {
        for e in dir.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                if b.len() < 64 << 10 {
                    corpus.push(b);
                }
            }
        }
    }
    std::panic::set_hook(Box::new(|_| {}));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut failures) = (0u64, 0u64);
    while Instant::now() < deadline {
        let data = mutate(&mut rng, &corpus);
        let text = String::from_utf8_lossy(&data).into_owned();
        let mut local = Rng(rng.next() | 1);
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&text, &mut local)));
        let problem = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(p) => Some(format!(
                "panic: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        runs += 1;
        if let Some(problem) = problem {
            failures += 1;
            std::fs::create_dir_all("crashes").ok();
            let path = format!("crashes/crash-{runs}.txt");
            std::fs::write(&path, &text).ok();
            eprintln!("{path}: {problem}");
            if failures >= 20 {
                break;
            }
        } else if runs % 64 == 0 && corpus.len() < 4096 && text.len() < 8192 {
            // Keep some survivors so mutations compound.
            corpus.push(data);
        }
    }
    println!("{runs} inputs in {seconds} s (seed {seed}), {failures} failures");
    if failures > 0 {
        std::process::exit(1);
    }
}
