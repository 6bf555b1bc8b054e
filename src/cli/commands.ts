// Every subcommand module registers itself on import.
export {};
