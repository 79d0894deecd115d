/**
 * A JSON Schema form on JupyterLab's own renderer (`FormComponent`, rjsf +
 * ajv8), with the sidebar's field template: reset-to-default per field and
 * errors (client checks and server problems) next to each field.
 */
import { TranslationBundle } from '@jupyterlab/translation';
import { FormComponent, IFormComponentProps } from '@jupyterlab/ui-components';
import { IChangeEvent } from '@rjsf/core';
import { ErrorSchema, RJSFSchema, RJSFValidationError, UiSchema } from '@rjsf/utils';
import validator from '@rjsf/validator-ajv8';
import React from 'react';

import { FieldTemplate, IFormContext } from './FieldTemplate';
import { JSONObject } from './jsonSchema';
import { FieldErrors, toErrorSchema } from './problems';

const ID_SEPARATOR = '--';

export interface ISchemaFormProps {
  /** Prefix of the inputs' ids (unique in the page). */
  idPrefix: string;
  schema: JSONObject;
  uiSchema: JSONObject;
  formData: JSONObject;
  /** Values the reset buttons restore. */
  defaults: JSONObject;
  /** Errors to show next to their fields (dotted paths). */
  errors: FieldErrors;
  /** Validate with the schema while typing (else only `errors` are shown). */
  liveValidate: boolean;
  /** Re-word ajv's messages (when `liveValidate`). */
  transformErrors?: (errors: RJSFValidationError[]) => RJSFValidationError[];
  disabled?: boolean;
  onChange: (data: JSONObject) => void;
  onReset: (path: string[]) => void;
  trans: TranslationBundle;
}

export function SchemaForm(props: ISchemaFormProps): JSX.Element {
  const { trans, defaults, onReset } = props;
  const formContext = React.useMemo<IFormContext>(
    () => ({ defaults, onReset, trans, idSeparator: ID_SEPARATOR }),
    [defaults, onReset, trans]
  );
  const extraErrors = React.useMemo(
    () => toErrorSchema(props.errors) as ErrorSchema,
    [props.errors]
  );
  // rjsf's generics do not line up with ReadonlyJSONObject: one cast here.
  const formProps = {
    schema: props.schema as RJSFSchema,
    uiSchema: props.uiSchema as UiSchema,
    formData: props.formData,
    validator,
    idPrefix: props.idPrefix,
    idSeparator: ID_SEPARATOR,
    liveValidate: props.liveValidate,
    noValidate: !props.liveValidate,
    noHtml5Validate: true,
    // Only what the data has: no empty Apptainer {Type: local, Options: []}
    // conjured from nested defaults.
    experimental_defaultFormStateBehavior: {
      arrayMinItems: { populate: 'never' },
      emptyObjectFields: 'populateRequiredDefaults'
    },
    showErrorList: false as const,
    extraErrors,
    transformErrors: props.transformErrors,
    templates: { FieldTemplate },
    formContext,
    disabled: props.disabled,
    onChange: (event: IChangeEvent) => props.onChange((event.formData ?? {}) as JSONObject),
    compact: true,
    buttonStyle: 'text',
    showModifiedFromDefault: false
  } as unknown as IFormComponentProps;
  return <FormComponent {...formProps} />;
}
