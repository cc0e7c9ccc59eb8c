// Package sim is a synthetic headstage with ground truth.
//
// It generates realistic extracellular recordings (units with distinct
// waveforms, refractory Poisson firing with bursts, background noise with a
// realistic spectrum, multi-unit hum, LFP, mains, artifacts and drift) whose
// firing is tuned to a simulated 2-D behaviour. It runs in process as a
// device.Source, or as a headstage emulator serving the wire protocol on a
// pseudo-terminal, a TCP socket or a file, with fault injection. It is the
// httptest of this project.
package sim
