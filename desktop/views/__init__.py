"""Plot widgets: stem waveform lanes (`waveform`) and the spectrogram (`spectrogram`);
their numpy data without Qt (`waveform_data`, `spectrogram_data`).
"""
