"""The equations: one small jitted function per tagged equation (forward, backward,
activations, optimizer updates, metrics), the JIT options, and the NumPy reference they are tested
against. Nothing here knows a network; everything above uses these."""
