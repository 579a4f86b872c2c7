import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { App } from './App.tsx';

function mockFetch(response: Response) {
  return vi.spyOn(globalThis, 'fetch').mockResolvedValue(response);
}

afterEach(cleanup);

describe('App', () => {
  it('shows the greeting from /api/hello', async () => {
    const fetchMock = mockFetch(
      new Response(JSON.stringify({ message: 'Hello, world!', service: 'svc', version: 'test', time: '2024-05-01T12:00:00Z' }), {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
      }),
    );

    render(<App />);

    expect(await screen.findByText('Hello, world!')).toBeTruthy();
    expect(fetchMock).toHaveBeenCalledWith('/api/hello', expect.objectContaining({ headers: { Accept: 'application/json' } }));
  });

  it('reports a failing backend', async () => {
    mockFetch(new Response('boom', { status: 502, statusText: 'Bad Gateway' }));

    render(<App />);

    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('502');
  });
});
