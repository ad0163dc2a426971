"""Catalogue of real car parts used as component names in generated notes and specs.

No name contains a material, condition or year word (e.g. no "steel wheel"), so a part
name never changes the label of a note under the regulation."""

PARTS = (
    "alternator", "starter motor", "radiator", "water pump", "fuel pump", "brake caliper",
    "brake disc", "brake pad", "brake drum", "brake booster", "brake line", "master cylinder",
    "clutch master cylinder", "clutch plate", "pressure plate", "flywheel", "crankshaft",
    "camshaft", "connecting rod", "piston", "cylinder head", "engine block", "oil pan",
    "intake manifold", "exhaust manifold", "catalytic converter", "muffler", "tailpipe",
    "turbocharger", "intercooler", "throttle body", "fuel injector", "spark plug",
    "ignition coil", "distributor", "timing belt", "timing chain", "timing cover",
    "serpentine belt", "tensioner pulley", "idler pulley", "thermostat housing",
    "coolant reservoir", "expansion tank", "oil filter housing", "air filter housing",
    "mass air flow sensor", "oxygen sensor", "EGR valve", "PCV valve", "fuel tank", "fuel rail",
    "fuel filler neck", "gearbox housing", "transmission case", "driveshaft", "CV joint",
    "differential housing", "axle shaft", "wheel hub", "wheel bearing", "control arm",
    "trailing arm", "steering knuckle", "tie rod end", "ball joint", "steering rack",
    "steering column", "power steering pump", "shock absorber", "coil spring", "leaf spring",
    "strut mount", "anti-roll bar", "sway bar link", "subframe", "front bumper", "rear bumper",
    "bumper bracket", "fender", "bonnet", "hood hinge", "tailgate", "door panel", "door handle",
    "window regulator", "wing mirror housing", "wiper arm", "wiper motor", "headlamp housing",
    "tail light housing", "radiator grille", "dashboard frame", "seat frame", "seat rail",
    "seat belt buckle", "pedal box", "ABS pump", "battery tray", "battery clamp", "engine mount",
    "gearbox mount", "heat shield", "exhaust hanger", "roof rail", "tow bar",
    "spare wheel carrier", "wheel rim", "hubcap", "mud flap", "skid plate", "fan shroud",
    "cooling fan", "blower motor", "AC compressor", "AC condenser", "heater core",
    "fuse box cover", "ECU bracket", "sunroof frame", "handbrake lever", "gear lever",
    "rocker cover", "valve cover", "sump guard", "oil cooler", "fuel filter", "glow plug",
    "vacuum pump", "horn", "washer pump", "door hinge", "boot lid", "bonnet latch",
)

assert len(set(PARTS)) == len(PARTS) >= 100
