"""What the tests share, one module per concern; test modules import from here, never from
each other, and conftest.py only turns these into fixtures.

- ``orga``: running `orga` (in a subprocess or in-process), its environment, its output;
- ``sandbox``: `orga serve` as a process on loopback;
- ``faults``: a raw TCP server that answers what a script says, TLS, free ports;
- ``pulse``: a private PulseAudio with null sinks (a virtual microphone and speaker);
- ``turn``: coturn on loopback;
- ``netns``: the tests' own network namespace;
- ``audio``: WAV files in and out, tones, speech, spectra;
- ``video``: a camera-like y4m file;
- ``tokens``: JWTs made by hand.
"""
