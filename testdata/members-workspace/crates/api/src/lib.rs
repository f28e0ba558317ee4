/// The value of api: its own and its dependencies'.
pub fn value() -> u64 {
    3 + service::value() + store::value()
}

#[cfg(test)]
mod tests {
    #[test]
    fn positive() {
        assert!(super::value() > 0);
    }
}
