"""Plot widgets: stem waveform lanes (`waveform`) and the spectrogram (`spectrogram`).
"""
