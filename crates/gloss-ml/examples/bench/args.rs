//! Command-line flags of the bench, parsed by hand (a handful of flags needs no parser crate).

use anyhow::{bail, Context};

pub const USAGE: &str = "\
usage: bench [--quick] [--sets polarity,spam,wnut] [--sizes 100,500,1000,2000]
             [--teacher-sample N] [--teacher-chars N] [--teacher-max-new N]
             [--no-teacher] [--no-speed] [--encoder-sentences N] [--threads N]

  --quick              sizes 100,500, teacher sample 20, 300 encoder sentences
  --sets LIST          data sets for the learning curves (default: all three)
  --sizes LIST         gold examples per student (default 100,500,1000,2000)
  --teacher-sample N   test examples the GGUF teacher labels per set (default 200)
  --teacher-chars N    characters of each text the GGUF teacher reads (default 1500)
  --teacher-max-new N  answer tokens allowed for entity extraction (default 256)
  --no-teacher         skip the GGUF teacher (the slow part)
  --no-speed           skip the encoder throughput table
  --encoder-sentences N  sentences for the encoder throughput table (default 2000)
  --threads N          CPU threads for candle (default 2)

Models come from $GLOSS_TEST_MODELS (default ~/.cache/gloss-test-models), corpora from
$GLOSS_TEST_DATA (default ~/.cache/gloss-test-data).";

/// One of the bench's data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Polarity,
    Spam,
    Wnut,
}

impl Set {
    pub fn name(self) -> &'static str {
        match self {
            Set::Polarity => "polarity",
            Set::Spam => "spam",
            Set::Wnut => "wnut",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Args {
    pub sets: Vec<Set>,
    pub sizes: Vec<usize>,
    pub teacher_sample: usize,
    pub teacher_chars: usize,
    pub teacher_max_new: usize,
    pub teacher: bool,
    pub speed: bool,
    pub encoder_sentences: usize,
    pub threads: usize,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            sets: vec![Set::Polarity, Set::Spam, Set::Wnut],
            sizes: vec![100, 500, 1000, 2000],
            teacher_sample: 200,
            teacher_chars: 1500,
            teacher_max_new: 256,
            teacher: true,
            speed: true,
            encoder_sentences: 2000,
            threads: 2,
        }
    }
}

fn list<T>(value: &str, item: impl Fn(&str) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(item)
        .collect()
}

fn number(flag: &str, value: &str) -> anyhow::Result<usize> {
    value
        .parse()
        .with_context(|| format!("{flag}: {value:?} is not a number"))
}

/// Parses the flags after the program name; `Ok(None)` means `--help` was asked for.
pub fn parse(raw: impl IntoIterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mut args = Args::default();
    let mut raw = raw.into_iter();
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => {
                args.sizes = vec![100, 500];
                args.teacher_sample = 20;
                args.encoder_sentences = 300;
            }
            "--sets" => {
                args.sets = list(&value()?, |s| match s {
                    "polarity" => Ok(Set::Polarity),
                    "spam" => Ok(Set::Spam),
                    "wnut" => Ok(Set::Wnut),
                    other => bail!("--sets: unknown set {other:?} (polarity, spam, wnut)"),
                })?
            }
            "--sizes" => args.sizes = list(&value()?, |s| number("--sizes", s))?,
            "--teacher-sample" => args.teacher_sample = number(&flag, &value()?)?,
            "--teacher-chars" => args.teacher_chars = number(&flag, &value()?)?,
            "--teacher-max-new" => args.teacher_max_new = number(&flag, &value()?)?,
            "--no-teacher" => args.teacher = false,
            "--no-speed" => args.speed = false,
            "--encoder-sentences" => args.encoder_sentences = number(&flag, &value()?)?,
            "--threads" => args.threads = number(&flag, &value()?)?,
            other => bail!("unknown flag {other:?}\n\n{USAGE}"),
        }
    }
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        bail!("--sizes: give positive sizes");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    Ok(Some(args))
}
