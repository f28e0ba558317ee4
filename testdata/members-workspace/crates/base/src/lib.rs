/// The value of base: its own and its dependencies'.
pub fn value() -> u64 {
    4
}

#[cfg(test)]
mod tests {
    #[test]
    fn positive() {
        assert!(super::value() > 0);
    }
}
