import { inject } from 'vitest';

// Runs in every test worker before its test files: the addresses the global setup brought up.
Object.assign(process.env, inject('testEnv'));
