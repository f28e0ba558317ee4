/// The value of model: its own and its dependencies'.
pub fn value() -> u64 {
    5 + base::value()
}

#[cfg(test)]
mod tests {
    #[test]
    fn positive() {
        assert!(super::value() > 0);
    }
}
