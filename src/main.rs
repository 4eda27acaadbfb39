fn main() {
    std::process::exit(ringws::cli::main());
}
