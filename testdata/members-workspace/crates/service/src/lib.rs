/// The value of service: its own and its dependencies'.
pub fn value() -> u64 {
    7 + model::value() + util::value()
}

#[cfg(test)]
mod tests {
    #[test]
    fn positive() {
        assert!(super::value() > 0);
    }
}
