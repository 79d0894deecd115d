import { apiUrl } from '../url';

describe('apiUrl', () => {
  it('joins the base URL and the endpoint with single slashes', () => {
    expect(apiUrl('http://h:8888/', 'features')).toBe('http://h:8888/hpcml/api/features');
    expect(apiUrl('http://h/user/me', '/runs/abc?limit=5')).toBe(
      'http://h/user/me/hpcml/api/runs/abc?limit=5'
    );
    expect(apiUrl('http://h/', '')).toBe('http://h/hpcml/api');
  });
});
