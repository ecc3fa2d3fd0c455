// Must NOT type-check: a wrong option type (the package test runs tsc on it and expects an error).
import { TelebridgeClient } from 'telebridge-client';
new TelebridgeClient('ws://127.0.0.1:8080/ws', { initialDelay: '250' });
