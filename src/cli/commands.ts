// Every subcommand module registers itself on import.
import './appliance.js';
import './demo.js';
