// Package decode bins sorted spikes and runs linear decoders (ridge/Wiener
// filters with causal lags, Kalman filters) that map binned counts to
// behaviour such as 2-D hand velocity.
//
// Spikes (sort.Spike, or CSV files) enter; models are fitted on a
// chronological split, evaluated by R² and correlation, saved as versioned
// JSON, and run online to emit one Estimate per closed bin.
package decode
