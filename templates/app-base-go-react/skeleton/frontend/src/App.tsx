import { useEffect, useState } from 'react';
import { fetchHello, type Hello } from './api.ts';

type State =
  | { kind: 'loading' }
  | { kind: 'loaded'; hello: Hello }
  | { kind: 'failed'; error: string };

export function App() {
  const [name, setName] = useState('');
  const [state, setState] = useState<State>({ kind: 'loading' });

  useEffect(() => {
    const controller = new AbortController();
    setState({ kind: 'loading' });
    fetchHello(name, controller.signal)
      .then((hello) => setState({ kind: 'loaded', hello }))
      .catch((error: unknown) => {
        if (!controller.signal.aborted) {
          setState({ kind: 'failed', error: error instanceof Error ? error.message : String(error) });
        }
      });
    return () => controller.abort();
  }, [name]);

  return (
    <main className="app">
      <h1>${{ values.name }}</h1>
      <label>
        Your name{' '}
        <input value={name} onChange={(e) => setName(e.target.value)} placeholder="world" maxLength={64} />
      </label>
      <section aria-live="polite">
        {state.kind === 'loading' && <p>Loading…</p>}
        {state.kind === 'failed' && <p role="alert">Could not reach the backend: {state.error}</p>}
        {state.kind === 'loaded' && (
          <>
            <p className="message">{state.hello.message}</p>
            <p className="meta">
              {state.hello.service} {state.hello.version}
            </p>
          </>
        )}
      </section>
    </main>
  );
}
