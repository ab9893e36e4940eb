"""espeak-ng speech with phoneme timing, through the C library (ctypes).

The library and its data come from the ``espeakng-loader`` wheel. espeak-ng is
a formant synthesiser: robotic, but each of its voice variants (``en-us+m3``,
``en-us+f2``, ...) has its own pitch and formants, which widens the range of
voices the Piper voice alone gives the training corpus.

Timing: with phoneme events enabled, the synthesis callback receives one
event per phoneme (type 7) carrying its IPA name and its start in the audio
(milliseconds). A phoneme lasts until the next one starts.

The library keeps global state, so one :class:`Espeak` per process, used from
one thread.
"""

from __future__ import annotations

import ctypes

import numpy as np

from .articulation import Segment, segments_from_alignment

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS
_PHONEME_EVENTS = 0x1  # espeakINITIALIZE_PHONEME_EVENTS
_PHONEME_IPA = 0x2  # espeakINITIALIZE_PHONEME_IPA
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    """espeak-ng with IPA phoneme events."""

    def __init__(self):
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, data, _PHONEME_EVENTS | _PHONEME_IPA)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng did not initialise")
        self._audio: list[np.ndarray] = []
        self._phones: list[tuple[str, float]] = []
        self._callback = _CALLBACK(self._on_synth)  # kept alive while the library holds it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, count, events) -> int:
        if count > 0:
            self._audio.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.float32) / 32768.0)
        i = 0
        while events[i].type != 0:  # the list ends with espeakEVENT_LIST_TERMINATED
            e = events[i]
            if e.type == _EVENT_PHONEME:
                self._phones.append((e.id.string.decode("utf-8", "replace"), e.audio_position / 1000.0))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int = 50):
        """Speech (float32 at ``sample_rate``) and its phone segments.

        voice: e.g. ``en-us+m3``; rate in words per minute (80-450); pitch and
        range 0-100.
        """
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._audio, self._phones = [], []
        buf = text.encode("utf-8") + b"\0"
        if self.lib.espeak_Synth(buf, len(buf), 0, 0, 0, _CHARS_UTF8, None, None) != 0:
            raise RuntimeError("espeak-ng synthesis failed")
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        total = audio.size / self.sample_rate
        phones = stop_closures(self._phones, audio, self.sample_rate)
        return audio, phones_to_segments(phones, total)


VOICELESS_STOPS = "ptk"
_MARKS = str.maketrans("", "", "ˈˌː")  # stress and length marks, dropped from phoneme names


def stop_closures(phones: list[tuple[str, float]], audio: np.ndarray, sample_rate: int,
                  longest: float = 0.15) -> list[tuple[str, float]]:
    """Move each voiceless stop's start back to the start of its closure.

    espeak-ng reports /p t k/ at the release burst; the closure before it (the
    lips already shut for /p/) is the silent tail of the previous phoneme. The
    silence (5 ms blocks under -60 dBFS) right before the burst, up to
    ``longest`` seconds and not past the previous phoneme's start, goes to the stop.
    """
    block = int(0.005 * sample_rate)
    out = list(phones)
    for i in range(1, len(out)):
        name, start = out[i]
        if name.lstrip("ˈˌ")[:1] not in VOICELESS_STOPS:
            continue
        floor = max(out[i - 1][1], start - longest)
        t = start
        while t - 0.005 >= floor:
            x = audio[int((t - 0.005) * sample_rate): int((t - 0.005) * sample_rate) + block]
            if x.size == 0 or np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3:
                break
            t -= 0.005
        out[i] = (name, t)
    return out


def phones_to_segments(phones: list[tuple[str, float]], total: float) -> list[Segment]:
    """(IPA name, start seconds) events -> segments; each lasts until the next starts.

    espeak-ng names a phoneme with its stress and length marks attached
    (``ˈaɪ``, ``iː``) and diphthongs and affricates as one event: the marks
    are split off and multi-symbol names share their time equally, so the
    symbols match Piper's one-character ones. Unnamed events are pauses: a
    word gap, or silence when longer than 120 ms. The audio before the first
    phoneme is silence.
    """
    symbols, durations = [], []
    if phones and phones[0][1] > 0:
        symbols.append("sil")
        durations.append(phones[0][1])
    starts = [t for _, t in phones] + [total]
    for (name, start), end in zip(phones, starts[1:]):
        dur = max(end - start, 0.0)
        core = name.translate(_MARKS)
        if not core:
            symbols.append("sil" if dur > 0.12 else " ")
            durations.append(dur)
            continue
        if name[:1] in "ˈˌ":
            symbols.append("ˈ")
            durations.append(0.0)
        symbols += list(core)
        durations += [dur / len(core)] * len(core)
    return segments_from_alignment(symbols, durations)
