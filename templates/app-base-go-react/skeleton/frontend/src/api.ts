/** The answer of the backend's GET /api/hello. */
export interface Hello {
  message: string;
  service: string;
  version: string;
  time: string;
}

function isHello(value: unknown): value is Hello {
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  const v = value as Record<string, unknown>;
  return ['message', 'service', 'version', 'time'].every((k) => typeof v[k] === 'string');
}

/** Calls GET /api/hello; rejects on HTTP errors and unexpected bodies. */
export async function fetchHello(name: string, signal?: AbortSignal): Promise<Hello> {
  const query = name.trim() === '' ? '' : `?name=${encodeURIComponent(name.trim())}`;
  const response = await fetch(`/api/hello${query}`, {
    headers: { Accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
  if (!response.ok) {
    throw new Error(`GET /api/hello failed: ${response.status} ${response.statusText}`);
  }
  const body: unknown = await response.json();
  if (!isHello(body)) {
    throw new Error('GET /api/hello returned an unexpected body');
  }
  return body;
}
