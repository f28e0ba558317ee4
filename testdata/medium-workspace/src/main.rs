use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args { #[arg(default_value = "a+b")] pattern: String }

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Hit { text: String, matched: bool }

fn main() {
    let args = Args::parse();
    let re = regex::Regex::new(&args.pattern).unwrap();
    let hit = Hit { text: "aab".into(), matched: re.is_match("aab") };
    println!("{}", serde_json::to_string(&hit).unwrap());
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::Hit { text: "x".into(), matched: true };
        let s = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<super::Hit>(&s).unwrap(), h);
    }
}
