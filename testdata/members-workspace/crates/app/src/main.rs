fn main() {
    println!("{}", 3 + api::value() + leaf::value() + tools::value());
}
