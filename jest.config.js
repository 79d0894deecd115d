/**
 * Unit tests for the pure TypeScript modules (no browser, no JupyterLab
 * runtime): ts-jest compiles them to CommonJS with the strict settings of
 * tsconfig.json (see tsconfig.test.json).
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  },
  moduleFileExtensions: ['ts', 'tsx', 'js', 'json']
};
