/// The value of tools: its own and its dependencies'.
pub fn value() -> u64 {
    5 + util::value()
}

#[cfg(test)]
mod tests {
    #[test]
    fn positive() {
        assert!(super::value() > 0);
    }
}
