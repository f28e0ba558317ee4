/// The value of leaf: its own and its dependencies'.
pub fn value() -> u64 {
    4 + base::value()
}

#[cfg(test)]
mod tests {
    #[test]
    fn positive() {
        assert!(super::value() > 0);
    }
}
