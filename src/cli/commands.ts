// Every subcommand module registers itself on import.
import './appliance.js';
import './keys.js';
import './demo.js';
import './bench.js';
import './fabric.js';
import './lab.js';
import './api-commands.js';
import './control.js';
